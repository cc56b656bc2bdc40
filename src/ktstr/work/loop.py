"""`WorkLoop`: the runtime a work type drives inside one worker process.

It does the work primitives (a batch of arithmetic, `sched_yield`, a stop-aware
sleep), counts `work_units` and keeps the scheduling evidence the checks judge:

- a *checkpoint* after every work unit reads the monotonic clock and the CPU the
  worker is on (`sched_getcpu(3)`). The longest wall-clock gap between two
  consecutive checkpoints is `max_gap_ns`, with the CPU at the end of that gap and
  when it ended (ns since `begin`). A gap is time the worker wanted to run but
  did not get to check in: runnable-but-waiting time, preemption, a stalled
  scheduler. A `sched_yield` keeps the task runnable, so a yield that comes back
  late is a gap too; a voluntary sleep is not: the gap clock restarts when the
  worker wakes up.
- `cpus` is the set of CPUs seen at checkpoints.
- `wake_overshoot_ns` samples how much later than asked each sleep returned
  (timer slack plus wake-to-run latency), bounded to `MAX_WAKE_SAMPLES`.

The hot path is one batch of integer arithmetic (`SPIN_BATCH` multiply-adds,
about 20 µs natively, ~25x that under TCG emulation), one clock read, one
`sched_getcpu` and one read of the shared stop byte per unit; nothing is
appended per unit. Clock, CPU reader and stop signal are injectable so unit
tests can drive the loop with a fake clock.
"""

from __future__ import annotations

import ctypes
import os
import random
import time
from collections.abc import Callable
from typing import Protocol

from ktstr.system.libc import function

#: Multiply-add steps per work unit: small enough that a stop or a stall shows
#: up within tens of microseconds natively, big enough that checkpoint overhead
#: stays a small share of the unit.
SPIN_BATCH = 200
#: Cap on stored sleep-overshoot samples (a uniform reservoir beyond it).
MAX_WAKE_SAMPLES = 10_000


class StopSignal(Protocol):
    """What a worker sees of the stop request: `is_set()` is cheap, `wait` sleeps."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop is requested or `timeout` seconds pass; True if stopped."""
        ...


#: The CPU the calling thread runs on, from glibc's `sched_getcpu(3)` (vDSO/rseq).
sched_getcpu: Callable[[], int] = function("sched_getcpu", ctypes.c_int, [])


def spin_batch(n: int, x: int) -> int:
    """`n` steps of a 31-bit linear congruential generator: pure CPU work."""
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


class WorkLoop:
    """Counters and checkpoints of one worker's run; see the module docstring."""

    def __init__(self, stop: StopSignal, *, clock: Callable[[], int] = time.monotonic_ns,
                 getcpu: Callable[[], int] = sched_getcpu, batch: int = SPIN_BATCH,
                 seed: int = 0) -> None:
        self._stop = stop
        self._clock = clock
        self._getcpu = getcpu
        self._batch = batch
        self._x = seed & 0x7FFFFFFF
        self._rng = random.Random(seed)
        self.work_units = 0
        self.iterations = 0
        self.cpus: set[int] = set()
        self.max_gap_ns = 0
        self.max_gap_cpu = -1
        self.max_gap_at_ns = 0
        self.wake_overshoot_ns: list[int] = []
        self.wake_count = 0  # sleeps measured (may exceed the samples kept)
        # What a work type measures in its own terms (schbench's RPS, bytes written...),
        # and what it could not do here (a missing device, capability or network).
        self.metrics: dict[str, float] = {}
        self.notes: list[str] = []
        self._start = 0
        self._last = 0
        self._cpu = -1
        self._end: int | None = None

    # -- lifecycle -----------------------------------------------------------------

    def begin(self) -> None:
        """Start the wall clock and the gap clock (call once, after the start barrier)."""
        self._start = self._last = self._clock()
        self._note_cpu(self._getcpu())

    def finish(self) -> None:
        """Stop the wall clock."""
        self._end = self._clock()

    @property
    def wall_ns(self) -> int:
        """Nanoseconds from `begin` to `finish` (or to now while running)."""
        end = self._end if self._end is not None else self._clock()
        return end - self._start

    @property
    def running(self) -> bool:
        """False once stop has been requested."""
        return not self._stop.is_set()

    # -- work primitives -----------------------------------------------------------

    def spin(self) -> int:
        """One batch of arithmetic = one work unit, then a checkpoint; returns its time."""
        self._x = spin_batch(self._batch, self._x)
        self.work_units += 1
        return self._checkpoint()

    def spin_for(self, secs: float) -> None:
        """Spin work units until `secs` have passed or stop is requested."""
        end = self._clock() + int(secs * 1e9)
        while self.running and self.spin() < end:
            pass

    def yield_(self, *, count: bool = True) -> int:
        """`sched_yield(2)`, then a checkpoint; a work unit when `count`."""
        os.sched_yield()
        if count:
            self.work_units += 1
        return self._checkpoint()

    def yield_for(self, secs: float) -> None:
        """Yield repeatedly (each yield one work unit) for `secs` or until stopped."""
        end = self._clock() + int(secs * 1e9)
        while self.running and self.yield_() < end:
            pass

    def sleep_for(self, secs: float) -> None:
        """Sleep `secs` (cut short by stop); the sleep is not a scheduling gap."""
        if not self.running:
            return
        before = self._checkpoint()
        stopped = self._stop.wait(secs)
        now = self._clock()
        self.resume_after_wait(None if stopped else now - before - int(secs * 1e9), now=now)

    def resume_after_wait(self, wake_ns: int | None = None, *, now: int | None = None) -> None:
        """Call after a voluntary block (a sleep, a futex or pipe wait for a partner).

        The wait is not a scheduling gap, so the gap clock restarts here; `wake_ns`,
        when given, is one wake-to-run latency sample (ns) for `wake_latency_us`.
        """
        self._last = self._clock() if now is None else now
        self._note_cpu(self._getcpu())
        if wake_ns is not None:
            self._record_overshoot(wake_ns)

    def note(self, text: str) -> None:
        """Say in the worker's report what this run could not do, once per distinct text."""
        if text not in self.notes:
            self.notes.append(text)

    # -- checkpoints ---------------------------------------------------------------

    def _checkpoint(self) -> int:
        now = self._clock()
        cpu = self._getcpu()
        gap = now - self._last
        if gap > self.max_gap_ns:
            self.max_gap_ns = gap
            self.max_gap_cpu = cpu
            self.max_gap_at_ns = now - self._start
        self._last = now
        if cpu != self._cpu:
            self._note_cpu(cpu)
        return now

    def _note_cpu(self, cpu: int) -> None:
        self._cpu = cpu
        self.cpus.add(cpu)

    def _record_overshoot(self, ns: int) -> None:
        ns = max(0, ns)
        self.wake_count += 1
        if len(self.wake_overshoot_ns) < MAX_WAKE_SAMPLES:
            self.wake_overshoot_ns.append(ns)
            return
        slot = self._rng.randrange(self.wake_count)
        if slot < MAX_WAKE_SAMPLES:
            self.wake_overshoot_ns[slot] = ns
