"""Lifecycle, affinity, priority and idle churn: task creation and exit, class and
priority changes, burst-and-sleep.

- `ForkExit`: `fork()`, the child `_exit(0)`s at once, the worker `waitpid`s it;
  one child is one work unit. Drives `wake_up_new_task` and the exit path
  (`do_group_exit`, `wait_task_zombie`).
- `AffinityChurn(spin_iters)`: `sched_setaffinity` to one CPU of the worker's
  starting mask, a different one each iteration (random), then `spin_iters`
  multiply-add steps and one work unit; forces `affine_move_task` /
  `migration_cpu_stop`. With a single allowed CPU it just spins there.
- `IdleChurn(burst, sleep)`: spin `burst` seconds then sleep `sleep` seconds
  (a `select` timeout: an hrtimer), so the CPU goes idle between short bursts.
- `NiceSweep`: nice cycled through -20..19 with `setpriority`, one step per
  iteration (`reweight_task`); values the worker may not set (negative ones
  without `CAP_SYS_NICE`, lower ones after raising it without the capability)
  are skipped.

Each iteration ends with one `WorkLoop.spin()`: the work unit and the
checkpoint that records the CPU and the scheduling gap.
"""

from __future__ import annotations

import errno
import os
import random
from dataclasses import dataclass
from datetime import timedelta

from ktstr.errors import SystemError_
from ktstr.validators import count
from ktstr.work.base import WorkType
from ktstr.work.cpu import Bursty
from ktstr.work.loop import WorkLoop, spin_batch

AFFINITY_CHURN_SPIN_ITERS = 1024
IDLE_CHURN_BURST_S = 0.0002
IDLE_CHURN_SLEEP_S = 0.001
NICE_MIN, NICE_MAX = -20, 19


@dataclass(frozen=True, slots=True)
class ForkExit(WorkType):
    """Fork a child that exits at once and reap it; one child per work unit."""

    def run(self, loop: WorkLoop) -> None:
        while loop.running:
            pid = os.fork()
            if pid == 0:
                os._exit(0)  # the child: straight out, no cleanup of the parent's state
            os.waitpid(pid, 0)
            loop.spin()
            loop.iterations += 1


@dataclass(frozen=True, slots=True, init=False)
class AffinityChurn(WorkType):
    """Re-pin to a different allowed CPU each iteration, then spin `spin_iters` steps."""

    spin_iters: int

    def __init__(self, spin_iters: int = AFFINITY_CHURN_SPIN_ITERS) -> None:
        object.__setattr__(self, "spin_iters",
                           count(spin_iters, "AffinityChurn spin_iters", minimum=0))

    def run(self, loop: WorkLoop) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        rng = random.Random(os.getpid())
        here = -1
        x = 1
        while loop.running:
            choices = [c for c in cpus if c != here] or cpus
            cpu = rng.choice(choices)
            try:
                os.sched_setaffinity(0, {cpu})
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                cpus.remove(cpu)  # gone from the cpuset meanwhile
                if not cpus:
                    raise SystemError_(
                        "AffinityChurn: none of the worker's starting CPUs is allowed any "
                        "more; hint: do not shrink the cgroup's cpuset to disjoint CPUs "
                        "under it") from err
                continue
            here = cpu
            x = spin_batch(self.spin_iters, x)
            loop.spin()
            loop.iterations += 1


@dataclass(frozen=True, slots=True, init=False)
class IdleChurn(Bursty):
    """Spin `burst` seconds, then sleep `sleep` seconds, repeat (short of both).

    Bursty's loop with defaults short enough that the CPU goes idle and wakes
    again hundreds of times a second.
    """

    def __init__(self, burst: float | timedelta = IDLE_CHURN_BURST_S,
                 sleep: float | timedelta = IDLE_CHURN_SLEEP_S) -> None:
        Bursty.__init__(self, burst, sleep)  # not super(): slots=True rebuilds the class


@dataclass(frozen=True, slots=True)
class NiceSweep(WorkType):
    """Step the worker's own nice through -20..19 and around again, one step per unit."""

    def run(self, loop: WorkLoop) -> None:
        levels = list(range(NICE_MIN, NICE_MAX + 1))
        refused: set[int] = set()
        i = levels.index(os.getpriority(os.PRIO_PROCESS, 0))
        while loop.running:
            i = (i + 1) % len(levels)
            nice = levels[i]
            if nice in refused and len(refused) < len(levels):
                continue
            try:
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except PermissionError:
                refused.add(nice)  # no CAP_SYS_NICE (and RLIMIT_NICE too low)
            loop.spin()
            loop.iterations += 1
