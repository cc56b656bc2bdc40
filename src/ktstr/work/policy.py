"""How a worker is scheduled and how workers are shaped: `SchedPolicy` and `CloneMode`.

`SchedPolicy` is a Linux scheduling policy and its parameters as one frozen value with
constructors: `SchedPolicy.normal()`, `.batch()`, `.idle()`, `.fifo(p)`,
`.round_robin(p)`, `.deadline(runtime, deadline, period)` and `.ext()`.
`WorkloadConfig(policy=...)` / `CgroupDef(policy=...)` take it; the worker calls
`apply(0)` on itself (each worker thread on itself, in thread mode) after its
cgroup, nice and affinity are set and before it reports ready, so a policy the
kernel refuses fails the spawn instead of silently running the wrong class.

It is applied with `sched_setattr(2)` (a ctypes `struct sched_attr`; Python's
`os.sched_setscheduler` cannot express SCHED_DEADLINE). What the kernel wants:

- `fifo`/`round_robin` priorities are 1..99 (checked here); they, and
  `deadline`, need CAP_SYS_NICE (root in the guest has it).
- `deadline(runtime, deadline, period)` takes seconds (or `timedelta`); the
  rule runtime <= deadline <= period is checked before the syscall, as is
  the kernel's floor of 1024 ns for runtime. The kernel also refuses it (EPERM)
  for a task whose CPU affinity or cpuset is narrower than its root domain
  (admission control accounts bandwidth per root domain), and (EBUSY) when the
  root domain's deadline bandwidth is used up; the error says so. A deadline
  task cannot fork (the kernel returns EAGAIN), so ForkExit-like work under it
  fails by design.
- `ext()` is SCHED_EXT (7): the task belongs to the loaded sched_ext scheduler,
  even under one with SCX_OPS_SWITCH_PARTIAL that leaves other tasks in fair.
  A kernel without CONFIG_SCHED_CLASS_EXT refuses the policy number (EINVAL),
  which becomes a ConfigError saying so. A kernel that has it accepts SCHED_EXT
  also while no BPF scheduler is loaded: the task then carries policy 7 but runs
  in the fair class until a scheduler attaches (the kernel's `task_should_scx()`).
- `normal`/`batch`/`idle` keep the task's current nice value (sched_setattr
  would otherwise reset it to the struct's `sched_nice`, 0).

`CloneMode` says what a worker is: `FORK` (default) one process per worker;
`THREAD` all workers of one `WorkloadConfig` are threads of one forked leader
process (see `ktstr.workload.worker` for the mechanics and the GIL caveat).
"""

from __future__ import annotations

import ctypes
import enum
import os
from dataclasses import dataclass
from datetime import timedelta

from ktstr.errors import ConfigError
from ktstr.system.libc import MACHINE, syscall, syscall_nr
from ktstr.validators import is_int, seconds

SCHED_NORMAL = 0
SCHED_FIFO = 1
SCHED_RR = 2
SCHED_BATCH = 3
SCHED_IDLE = 5
SCHED_DEADLINE = 6
SCHED_EXT = 7

RT_PRIO_MIN, RT_PRIO_MAX = 1, 99
#: The kernel refuses a deadline runtime below 2^DL_SCALE ns (DL_SCALE = 10).
DL_RUNTIME_MIN_NS = 1 << 10

_POLICY_NAMES = {
    SCHED_NORMAL: "normal", SCHED_FIFO: "fifo", SCHED_RR: "round_robin",
    SCHED_BATCH: "batch", SCHED_IDLE: "idle", SCHED_DEADLINE: "deadline", SCHED_EXT: "ext",
}

#: (sched_setattr, sched_getattr) syscall numbers by machine.


class SchedAttr(ctypes.Structure):
    """`struct sched_attr`, version 0 (48 bytes: no utilisation clamps)."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
    ]


def _nr(name: str) -> int:
    nr = syscall_nr(name)
    if nr is None:
        raise ConfigError(f"{name}: no syscall number known for machine "
                          f"{MACHINE!r}; hint: add it to "
                          "ktstr.system.libc.SYSCALL_NUMBERS")
    return nr


def sched_setattr(pid: int, attr: SchedAttr) -> None:
    """sched_setattr(2) on `pid` (0: the calling thread); OSError with the errno."""
    attr.size = ctypes.sizeof(SchedAttr)
    if syscall(ctypes.c_long(_nr("sched_setattr")), ctypes.c_long(pid), ctypes.byref(attr),
                ctypes.c_uint(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def sched_getattr(pid: int = 0) -> SchedAttr:
    """sched_getattr(2) of `pid` (0: the calling thread): policy, nice, priority, dl params."""
    attr = SchedAttr()
    if syscall(ctypes.c_long(_nr("sched_getattr")), ctypes.c_long(pid), ctypes.byref(attr),
                ctypes.c_uint(ctypes.sizeof(SchedAttr)), ctypes.c_uint(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return attr


def _ns(what: str, value: object) -> int:
    """A duration in seconds (int/float) or a timedelta, as whole nanoseconds."""
    return round(seconds(value, f"SchedPolicy.deadline {what}") * 1e9)


@dataclass(frozen=True, slots=True)
class SchedPolicy:
    """One Linux scheduling policy with its parameters; build it with the classmethods."""

    policy: int = SCHED_NORMAL
    priority: int = 0
    runtime_ns: int = 0
    deadline_ns: int = 0
    period_ns: int = 0

    def __post_init__(self) -> None:
        if self.policy not in _POLICY_NAMES:
            raise ConfigError(f"SchedPolicy: policy {self.policy!r} is not one of "
                              f"{sorted(_POLICY_NAMES)}; hint: use SchedPolicy.fifo(10) etc.")
        if self.policy in (SCHED_FIFO, SCHED_RR):
            p = self.priority
            if not is_int(p) or not RT_PRIO_MIN <= p <= RT_PRIO_MAX:
                raise ConfigError(
                    f"SchedPolicy.{self.name}: priority {p!r} is outside "
                    f"{RT_PRIO_MIN}..{RT_PRIO_MAX}; hint: pick a real-time priority in that range")
        elif self.priority != 0:
            raise ConfigError(f"SchedPolicy.{self.name} takes no priority (got "
                              f"{self.priority!r}); hint: only fifo and round_robin have one")
        if self.policy == SCHED_DEADLINE:
            r, d, p = self.runtime_ns, self.deadline_ns, self.period_ns
            if not r <= d <= p:
                raise ConfigError(
                    f"SchedPolicy.deadline: runtime {r} ns <= deadline {d} ns <= period "
                    f"{p} ns does not hold; hint: the task needs its runtime within each "
                    "deadline and one deadline per period (e.g. deadline(0.01, 0.05, 0.1))")
            if r < DL_RUNTIME_MIN_NS:
                raise ConfigError(f"SchedPolicy.deadline: runtime {r} ns is below the "
                                  f"kernel's minimum of {DL_RUNTIME_MIN_NS} ns; hint: use a "
                                  "runtime of at least a few microseconds")
        elif self.runtime_ns or self.deadline_ns or self.period_ns:
            raise ConfigError(f"SchedPolicy.{self.name} takes no runtime/deadline/period; "
                              "hint: only SchedPolicy.deadline(...) has them")

    # -- the policies ----------------------------------------------------------------

    @classmethod
    def normal(cls) -> SchedPolicy:
        """SCHED_NORMAL (SCHED_OTHER): the fair class (EEVDF)."""
        return cls(SCHED_NORMAL)

    @classmethod
    def batch(cls) -> SchedPolicy:
        """SCHED_BATCH: fair class, treated as CPU-bound (no wakeup preemption)."""
        return cls(SCHED_BATCH)

    @classmethod
    def idle(cls) -> SchedPolicy:
        """SCHED_IDLE: fair class at the lowest possible weight."""
        return cls(SCHED_IDLE)

    @classmethod
    def fifo(cls, priority: int) -> SchedPolicy:
        """SCHED_FIFO at `priority` (1..99): real-time, runs until it blocks or yields."""
        return cls(SCHED_FIFO, priority=priority)

    @classmethod
    def round_robin(cls, priority: int) -> SchedPolicy:
        """SCHED_RR at `priority` (1..99): real-time with a round-robin timeslice."""
        return cls(SCHED_RR, priority=priority)

    @classmethod
    def deadline(cls, runtime: float | timedelta, deadline: float | timedelta,
                 period: float | timedelta) -> SchedPolicy:
        """SCHED_DEADLINE: `runtime` of CPU within each `deadline`, once per `period`
        (seconds or timedelta; runtime <= deadline <= period)."""
        return cls(SCHED_DEADLINE, runtime_ns=_ns("runtime", runtime),
                   deadline_ns=_ns("deadline", deadline), period_ns=_ns("period", period))

    @classmethod
    def ext(cls) -> SchedPolicy:
        """SCHED_EXT: scheduled by the loaded sched_ext (BPF) scheduler."""
        return cls(SCHED_EXT)

    # -- use -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The constructor's name: "normal", "fifo", "deadline", "ext"..."""
        return _POLICY_NAMES[self.policy]

    def __str__(self) -> str:
        if self.policy in (SCHED_FIFO, SCHED_RR):
            return f"{self.name}({self.priority})"
        if self.policy == SCHED_DEADLINE:
            return (f"deadline(runtime={self.runtime_ns / 1e6:g}ms, "
                    f"deadline={self.deadline_ns / 1e6:g}ms, period={self.period_ns / 1e6:g}ms)")
        return self.name

    def attr(self, nice: int = 0) -> SchedAttr:
        """The `struct sched_attr` that sets this policy (`nice` for the fair policies)."""
        fair = self.policy in (SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE, SCHED_EXT)
        return SchedAttr(ctypes.sizeof(SchedAttr), self.policy, 0, nice if fair else 0,
                         self.priority, self.runtime_ns, self.deadline_ns, self.period_ns)

    def apply(self, pid: int = 0) -> None:
        """Set this policy on `pid` (0: the calling thread), keeping its nice value.

        Raises ConfigError naming the policy, the task and what the kernel's
        errno means for this policy.
        """
        nice = os.getpriority(os.PRIO_PROCESS, pid)  # per thread on Linux
        try:
            sched_setattr(pid, self.attr(nice))
        except OSError as err:
            who = "the calling thread" if pid == 0 else f"task {pid}"
            raise ConfigError(f"cannot set SCHED policy {self} on {who}: "
                              f"{err.strerror} (errno {err.errno}); hint: "
                              f"{self._hint(err.errno or 0)}") from err

    def _hint(self, errno_: int) -> str:
        import errno as e

        if self.policy == SCHED_EXT and errno_ == e.EINVAL:
            return ("the kernel refuses SCHED_EXT (policy 7): it was built without "
                    "CONFIG_SCHED_CLASS_EXT; boot a kernel with sched_ext")
        if self.policy == SCHED_DEADLINE and errno_ == e.EPERM:
            return ("SCHED_DEADLINE needs CAP_SYS_NICE and a task allowed on every CPU of "
                    "its root domain: drop the worker's affinity / cpuset restriction")
        if self.policy == SCHED_DEADLINE and errno_ == e.EBUSY:
            return ("deadline admission control refused the bandwidth (runtime/period "
                    "over what /proc/sys/kernel/sched_rt_runtime_us leaves); ask for less")
        if self.policy == SCHED_DEADLINE and errno_ == e.EINVAL:
            return ("the kernel rejected the parameters: the period must lie within "
                    "/proc/sys/kernel/sched_deadline_period_{min,max}_us")
        if errno_ == e.EPERM:
            return "real-time and deadline policies need CAP_SYS_NICE (run as root)"
        if errno_ == e.ESRCH:
            return "the task has exited"
        return "see sched_setattr(2)"


class CloneMode(enum.Enum):
    """What a worker is: its own process (`FORK`) or a thread of one leader (`THREAD`)."""

    FORK = "fork"
    THREAD = "thread"
