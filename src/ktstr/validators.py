"""The checks every layer applies to the values a user passes in: numbers, counts, durations.

Python's `bool` is a subclass of `int`, so `True` passes `isinstance(x, int)`;
a count or a duration given as `True` is always a mistake. `is_int` and
`is_number` are the type tests that exclude it; `count`, `seconds` and
`milliseconds` validate a value and raise `ConfigError` naming it.

Durations are float seconds; a `datetime.timedelta` is accepted and converted.
A duration is a finite number: NaN and infinity are refused, and zero only where
the caller allows it (`allow_zero=True`, e.g. a settle time or a hold of 0 s).
Each value is validated once, where it enters (a decorator, a constructor), by
the function here that fits it.

This module imports only ktstr.errors, so any layer may use it.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TypeGuard

from ktstr.errors import ConfigError


def is_int(value: object) -> TypeGuard[int]:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """True for an int or a float that is not a bool (NaN and infinity included)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def count(value: object, what: str, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`, or ConfigError naming `what`."""
    if not is_int(value) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(
            f"{what} = {value!r} is not {kind}; "
            f"hint: pass an integer of at least {minimum}")
    return value


def seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    """`value` (float seconds or a timedelta) as a finite number of seconds, > 0 (or
    >= 0 with `allow_zero`), or ConfigError naming `what` and the value."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, timedelta):
        secs = value.total_seconds()
    elif is_number(value):
        secs = float(value)
    else:
        raise ConfigError(
            f"{what} = {value!r} is not a duration: it must be a finite number of seconds "
            f"{bound}; hint: pass seconds as a float (0.05 for 50 ms) or a datetime.timedelta")
    if allow_zero and not (math.isfinite(secs) and secs >= 0):
        raise ConfigError(
            f"{what} = {value!r} is not a duration: it must be a finite number of seconds "
            ">= 0; hint: give zero or more seconds, e.g. 1.5")
    if not allow_zero and not (math.isfinite(secs) and secs > 0):
        raise ConfigError(
            f"{what} = {value!r} is not a positive duration; "
            "hint: give a time greater than zero in seconds, e.g. 0.05 for 50 ms")
    return secs


def milliseconds(value: object, what: str) -> float:
    """`value` as a positive, finite number of milliseconds, or ConfigError naming `what`."""
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} = {value!r} is not a positive number of milliseconds; "
                          "hint: pass e.g. 10 for 10 ms")
    return float(value)
