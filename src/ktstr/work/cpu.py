"""CPU primitives and burst-and-sleep work types.

- `SpinWait`: tight spin, pure CPU; basic load balancing and fairness.
- `YieldHeavy`: `sched_yield` every iteration (one work unit per yield);
  wake/sleep and yield paths.
- `Mixed`: one spin batch then a yield per iteration; the yield is not a unit.
- `Bursty(burst, sleep)`: spin for `burst` seconds, sleep `sleep` seconds,
  repeat; frees CPUs for borrowing and idle balance. Defaults 50 ms / 100 ms.

All loop until the worker is stopped; one iteration is one pass of the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ktstr.validators import seconds
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop

BURSTY_BURST_S = 0.050
BURSTY_SLEEP_S = 0.100


@dataclass(frozen=True, slots=True)
class SpinWait(WorkType):
    """Tight CPU spin: one arithmetic batch per work unit."""

    def run(self, loop: WorkLoop) -> None:
        while loop.running:
            loop.spin()
            loop.iterations += 1


@dataclass(frozen=True, slots=True)
class YieldHeavy(WorkType):
    """`sched_yield` in a loop; each yield is one work unit."""

    def run(self, loop: WorkLoop) -> None:
        while loop.running:
            loop.yield_()
            loop.iterations += 1


@dataclass(frozen=True, slots=True)
class Mixed(WorkType):
    """A spin batch (one work unit), then a yield, per iteration."""

    def run(self, loop: WorkLoop) -> None:
        while loop.running:
            loop.spin()
            loop.yield_(count=False)
            loop.iterations += 1


@dataclass(frozen=True, slots=True, init=False)
class Bursty(WorkType):
    """Spin for `burst` seconds, then sleep for `sleep` seconds, repeat."""

    burst: float
    sleep: float

    def __init__(self, burst: float | timedelta = BURSTY_BURST_S,
                 sleep: float | timedelta = BURSTY_SLEEP_S) -> None:
        kind = type(self).__name__  # IdleChurn is a Bursty with shorter defaults
        object.__setattr__(self, "burst", seconds(burst, f"{kind} burst"))
        object.__setattr__(self, "sleep", seconds(sleep, f"{kind} sleep"))

    def run(self, loop: WorkLoop) -> None:
        while loop.running:
            loop.spin_for(self.burst)
            loop.sleep_for(self.sleep)
            loop.iterations += 1
