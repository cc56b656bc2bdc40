"""`Sequence(first, *rest)`: ordered phases looped for the whole run (seed 001 step 4).

Each phase runs for its duration in seconds, then the next; after the last the
loop restarts from `first`, until the worker is stopped. One iteration is one
complete pass. Phases:

- `Spin(s)`: spin batches (each one work unit) for `s` seconds.
- `Sleep(s)`: a stop-aware sleep; not a scheduling gap (see `WorkLoop`).
- `Yield(s)`: `sched_yield` repeatedly for `s` seconds, one work unit per yield.

Not yet supported here: the seed's `Io` and `AluHot` phases.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from ktstr.errors import ConfigError
from ktstr.work.base import WorkType, seconds
from ktstr.work.loop import WorkLoop


class Phase:
    """One phase of a `Sequence`; subclasses are frozen dataclasses with `seconds`."""

    __slots__ = ()
    seconds: float

    def __init__(self, secs: float | timedelta) -> None:
        object.__setattr__(self, "seconds", seconds(secs, f"{type(self).__name__} phase"))

    def run(self, loop: WorkLoop) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True, init=False)
class Spin(Phase):
    """Burn CPU for `seconds`."""

    seconds: float

    def run(self, loop: WorkLoop) -> None:
        loop.spin_for(self.seconds)


@dataclass(frozen=True, slots=True, init=False)
class Sleep(Phase):
    """Sleep for `seconds` (cut short when the worker is stopped)."""

    seconds: float

    def run(self, loop: WorkLoop) -> None:
        loop.sleep_for(self.seconds)


@dataclass(frozen=True, slots=True, init=False)
class Yield(Phase):
    """Yield the CPU repeatedly for `seconds`."""

    seconds: float

    def run(self, loop: WorkLoop) -> None:
        loop.yield_for(self.seconds)


@dataclass(frozen=True, slots=True, init=False)
class Sequence(WorkType):
    """Phases run in order and looped: `Sequence(Spin(0.1), Yield(0.02))`."""

    by_name: ClassVar[bool] = False
    first: Phase
    rest: tuple[Phase, ...]

    def __init__(self, first: Phase, *rest: Phase | Iterable[Phase]) -> None:
        flat: list[object] = []
        for item in rest:  # the seed's form `Sequence(first, [p2, p3])` is accepted too
            if isinstance(item, list | tuple):
                flat.extend(item)
            else:
                flat.append(item)
        for pos, phase in enumerate([first, *flat], start=1):
            if not isinstance(phase, Phase):
                raise ConfigError(
                    f"Sequence phase {pos} = {phase!r} is not a phase; "
                    "hint: use work.Spin(s), work.Sleep(s) or work.Yield(s)")
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "rest", tuple(flat))

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (self.first, *self.rest)

    def run(self, loop: WorkLoop) -> None:
        phases = self.phases
        while loop.running:
            for phase in phases:
                if not loop.running:
                    return
                phase.run(loop)
            loop.iterations += 1
