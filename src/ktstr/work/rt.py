"""Real-time pressure on CFS: preemption by RT tasks.

- `PreemptStorm`: one worker per cgroup (the first to start) switches itself to
  `SCHED_FIFO` and wakes every `PREEMPT_STORM_PERIOD_US` µs on an absolute
  hrtimer deadline, counts one work unit and sleeps again; every wake preempts
  whichever CFS task runs on its CPU (`wakeup_preempt` -> `resched_curr`), so
  the other workers, plain spinners, collect involuntary context switches at
  about the timer's rate. Its wake lateness is its wake-latency sample: the
  RT wake-to-run latency under CFS load.
- `RtStarvation`: workers pair up (group_size 2); role 0 of each pair becomes
  `SCHED_FIFO` and spins without ever sleeping, role 1 stays CFS and spins. CFS
  runs on a CPU only when no FIFO task wants it, so the CFS half starves except
  for what the RT throttle leaves it: `sched_rt_runtime_us` of every
  `sched_rt_period_us` for RT (95 % by default; some kernels default to all
  of it), and on Linux 6.12+ the fair deadline server (50 ms of every second
  for CFS). The throttle figures land in the workers' metrics. A throttle
  that leaves CFS nothing is noted; without a fair server a FIFO spinner would
  then own its CPU for good, the agent that must stop it included, so the
  worker leaves CFS the classic 5 % itself, sleeping. The FIFO half turns FIFO
  only once its partner has taken its role.

A worker that may not become FIFO (no `CAP_SYS_NICE`) still runs its loop as
CFS and says so. Every worker reports the policy the kernel shows for it in
`/proc/self/sched` (`policy`: 0 normal, 1 FIFO) as the metric `sched_policy`.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
import struct
from dataclasses import dataclass, field

from ktstr.errors import SystemError_
from ktstr.system.fs import SysIoError
from ktstr.system.proc import task_sched
from ktstr.system.sched_debug import has_fair_server as has_fair_server_dir
from ktstr.system.sysctl import sysctl_int
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop
from ktstr.work.pairing import PairArena, pair_key
from ktstr.work.timers import Periodic, exchange_pids

#: FIFO priority of the preemptor (mid-range: above CFS, below kernel RT threads).
PREEMPT_STORM_PRIORITY = 50
#: The preemptor's period: ~1 kHz of wakes.
PREEMPT_STORM_PERIOD_US = 1000
#: FIFO priority of RtStarvation's hogs.
RT_STARVATION_PRIORITY = 50
#: Share of each RT period a hog leaves to CFS by itself when the kernel's
#: throttle is off (the kernel's own default: 50 ms of every second).
RT_SELF_THROTTLE_SHARE = 0.05
#: The RT period used for that self-throttle when the kernel reports none, in µs.
RT_DEFAULT_PERIOD_US = 1_000_000

_KEY = struct.Struct("=Q")
_SLOTS = mmap.PAGESIZE // _KEY.size


def read_policy() -> int:
    """The scheduling policy the kernel shows for this task (`/proc/self/sched`).

    Falls back to `sched_getscheduler` on kernels without `CONFIG_SCHED_DEBUG`.
    """
    try:
        policy = task_sched("self").get("policy")
    except SysIoError:
        policy = None
    return int(policy) if policy is not None else os.sched_getscheduler(0)


def become_fifo(loop: WorkLoop, priority: int) -> bool:
    """`sched_setscheduler(0, SCHED_FIFO, priority)`; on refusal a note, and False."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError as err:
        loop.note(f"sched_setscheduler(SCHED_FIFO, {priority}) refused ({err.strerror}): "
                  "this worker runs as CFS; hint: it needs CAP_SYS_NICE or RLIMIT_RTPRIO")
        return False
    return True


def has_fair_server() -> bool:
    """Whether this kernel runs CFS under a deadline server (Linux 6.12 and later): it
    keeps CFS a share of each CPU (50 ms of every second by default) even when RT
    throttling does not."""
    if has_fair_server_dir():
        return True
    major, minor = (int(p) for p in re.findall(r"\d+", os.uname().release)[:2])
    return (major, minor) >= (6, 12)


def rt_throttle() -> tuple[int, int]:
    """(`sched_rt_runtime_us`, `sched_rt_period_us`); runtime -1 = no throttle."""
    runtime = sysctl_int("kernel.sched_rt_runtime_us")
    period = sysctl_int("kernel.sched_rt_period_us")
    return (-1 if runtime is None else runtime,
            RT_DEFAULT_PERIOD_US if period is None else period)


class Election:
    """First worker per key wins: a shared page of keys, claimed under `lockf`.

    Created in the parent before the fork, like `PairArena`; the key is the
    worker's `pair_key()`, so each cgroup (and each spawning parent) elects its own.
    """

    __slots__ = ("_owner", "fd", "mm")

    def __init__(self) -> None:
        self._owner = os.getpid()
        self.fd = os.memfd_create("ktstr-election", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, mmap.PAGESIZE)
        self.mm = mmap.mmap(self.fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED)

    def __del__(self) -> None:
        if getattr(self, "_owner", None) == os.getpid():
            self.mm.close()
            os.close(self.fd)

    def claim(self, key: int) -> bool:
        """True when no other worker holds `key`: the caller holds it now."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            free = -1
            for slot in range(_SLOTS):
                held = _KEY.unpack_from(self.mm, slot * _KEY.size)[0]
                if held == key:
                    return False
                if held == 0 and free < 0:
                    free = slot
            if free < 0:
                raise SystemError_(
                    f"all {_SLOTS} election slots are taken; hint: use one work type "
                    "instance per cgroup")
            _KEY.pack_into(self.mm, free * _KEY.size, key)
            return True
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def release(self, key: int) -> None:
        """Give `key` up, so a later spawn in the same cgroup elects again."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            for slot in range(_SLOTS):
                if _KEY.unpack_from(self.mm, slot * _KEY.size)[0] == key:
                    _KEY.pack_into(self.mm, slot * _KEY.size, 0)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)


def _spin(loop: WorkLoop) -> None:
    while loop.running:
        loop.spin()
        loop.iterations += 1


@dataclass(frozen=True, slots=True, init=False)
class PreemptStorm(WorkType):
    """One SCHED_FIFO worker wakes at ~1 kHz and preempts the CFS spinners around it."""

    _election: Election = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self) -> None:
        object.__setattr__(self, "_election", Election())

    def run(self, loop: WorkLoop) -> None:
        key = pair_key()
        if not self._election.claim(key):
            loop.metrics["sched_policy"] = float(read_policy())
            loop.metrics["preemptor"] = 0.0
            _spin(loop)
            return
        try:
            become_fifo(loop, PREEMPT_STORM_PRIORITY)
            loop.metrics["sched_policy"] = float(read_policy())
            loop.metrics["preemptor"] = 1.0
            timer = Periodic(PREEMPT_STORM_PERIOD_US * 1000)
            wakes = 0
            while loop.running:  # no arithmetic per wake: under emulation it would
                now, late = timer.wait()  # cost more than the period
                loop.resume_after_wait(late, now=now)
                wakes += 1
            loop.iterations += wakes
            loop.work_units += wakes
            loop.metrics.update(wakes=float(wakes), overruns=float(timer.overruns),
                                period_us=float(PREEMPT_STORM_PERIOD_US))
        finally:
            self._election.release(key)


@dataclass(frozen=True, slots=True, init=False)
class RtStarvation(WorkType):
    """Pairs of one SCHED_FIFO spinner and one CFS spinner: the CFS half starves down
    to what the RT throttle leaves it."""

    _arena: PairArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self) -> None:
        object.__setattr__(self, "_arena", PairArena())

    def run(self, loop: WorkLoop) -> None:
        runtime_us, period_us = rt_throttle()
        fair_server = has_fair_server()
        loop.metrics.update(rt_runtime_us=float(runtime_us), rt_period_us=float(period_us),
                            fair_server=float(fair_server))
        # Both roles are taken before anyone turns FIFO: a FIFO hog that started first
        # would keep its CFS partner from ever running far enough to claim its role.
        with exchange_pids(loop, self._arena) as (seat, _):
            hog = seat.role == 0 and become_fifo(loop, RT_STARVATION_PRIORITY)
            loop.metrics["sched_policy"] = float(read_policy())
            loop.metrics["rt_hog"] = 1.0 if seat.role == 0 else 0.0
            unthrottled = runtime_us < 0 or runtime_us >= period_us
            if hog and unthrottled:
                loop.note(f"RT throttle leaves CFS nothing (sched_rt_runtime_us={runtime_us} "
                          f"of sched_rt_period_us={period_us})" + (
                              ": the fair deadline server bounds the starvation"
                              if fair_server else
                              f": the FIFO worker leaves CFS {RT_SELF_THROTTLE_SHARE:.0%} "
                              "of each period itself, or nothing could stop it"))
            if hog and unthrottled and not fair_server:
                self._self_throttled(loop, period_us)
            else:
                _spin(loop)

    def _self_throttled(self, loop: WorkLoop, period_us: int) -> None:
        """Spin (1 - share) of each period, sleep the rest."""
        period = period_us / 1e6
        while loop.running:
            loop.spin_for(period * (1 - RT_SELF_THROTTLE_SHARE))
            loop.iterations += 1
            loop.sleep_for(period * RT_SELF_THROTTLE_SHARE)
