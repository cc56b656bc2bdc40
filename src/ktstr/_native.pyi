"""Types of the C extension built from _native.c at install time."""

from array import array

def schbench_math(data: array[int], n: int, reps: int, /) -> None: ...
