"""`Op`: one change a step makes to the running scenario (seed 004's `Op`).

Each variant is a frozen dataclass; build them with the `Op.*` constructors
(`Op.add_cgroup("a")`, `Op.spawn("a", work.SpinWait(), 2)`, ...). An op only
describes the change: `execute_steps` (steps.py) applies it through
`ctx.cgroups` and `WorkloadHandle`. `names()` lists the cgroups an op refers
to, so a step list can be checked for unknown names before anything runs.

Payload ops (`run_payload`, `wait_payload`, `kill_payload`) address a run by
its payload's name and cgroup; their rules are in ktstr.payloads.run and steps.py.
The scheduler ops drive `ctx.scheduler` (the run's scheduler slot);
`Op.snapshot` asks `ctx.snapshot_control` (the host, in a VM) for a capture.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ktstr.errors import ConfigError
from ktstr.payloads import Payload
from ktstr.scenario.cpuset import CpusetSpec
from ktstr.scheduler import Scheduler
from ktstr.validators import is_int
from ktstr.work import SpinWait, WorkType


class Op:
    """Base of every op variant; the static constructors are the public surface."""

    __slots__ = ()

    def names(self) -> tuple[str, ...]:
        """The cgroups this op needs to exist when it is applied."""
        return ()

    @staticmethod
    def add_cgroup(name: str) -> AddCgroup:
        """Create cgroup `name`; it lives until `remove_cgroup` or the scenario's end."""
        return AddCgroup(name)

    @staticmethod
    def remove_cgroup(name: str) -> RemoveCgroup:
        """Remove a cgroup, stopping (collecting and judging) its workers first."""
        return RemoveCgroup(name)

    @staticmethod
    def set_cpuset(cgroup: str, spec: CpusetSpec) -> SetCpuset:
        """Restrict `cgroup` to `spec`, resolved on `ctx.topo`."""
        return SetCpuset(cgroup, spec)

    @staticmethod
    def clear_cpuset(cgroup: str) -> ClearCpuset:
        """Let `cgroup` use all CPUs again."""
        return ClearCpuset(cgroup)

    @staticmethod
    def swap_cpusets(a: str, b: str) -> SwapCpusets:
        """Give `a` the cpuset of `b` and `b` that of `a` (no cpuset = all CPUs)."""
        return SwapCpusets(a, b)

    @staticmethod
    def spawn(cgroup: str, work: WorkType | None = None,
              workers: int | None = None) -> Spawn:
        """Fork `workers` (default `ctx.workers_per_cgroup`) workers running `work`
        (default SpinWait) into `cgroup` and start them at once."""
        return Spawn(cgroup, SpinWait() if work is None else work, workers)

    @staticmethod
    def stop_cgroup(name: str) -> StopCgroup:
        """Stop, collect and judge every worker in `name`; the cgroup stays."""
        return StopCgroup(name)

    @staticmethod
    def set_affinity(cgroup: str, spec: CpusetSpec) -> SetAffinity:
        """Set the CPU affinity of every task now in `cgroup` to `spec`."""
        return SetAffinity(cgroup, spec)

    @staticmethod
    def move_all_tasks(src: str, dst: str) -> MoveAllTasks:
        """Move every task of `src` into `dst`; its workers are then judged with `dst`."""
        return MoveAllTasks(src, dst)

    @staticmethod
    def freeze_cgroup(name: str) -> FreezeCgroup:
        """Freeze every task in `name` (`cgroup.freeze`)."""
        return FreezeCgroup(name)

    @staticmethod
    def unfreeze_cgroup(name: str) -> UnfreezeCgroup:
        """Thaw every task in `name`."""
        return UnfreezeCgroup(name)

    @staticmethod
    def capture_cgroup_procs(tag: str, cgroup: str) -> CaptureCgroupProcs:
        """Record `cgroup.procs` of `cgroup` under `tag` (see `execute_steps(captures=)`)."""
        return CaptureCgroupProcs(tag, cgroup)

    @staticmethod
    def attach_scheduler(scheduler: Scheduler) -> AttachScheduler:
        """Attach a staged sched_ext scheduler mid-run (a no-op if it is attached)."""
        return AttachScheduler(scheduler)

    @staticmethod
    def detach_scheduler() -> DetachScheduler:
        """Stop the attached scheduler; the run goes on under EEVDF (no-op without one)."""
        return DetachScheduler()

    @staticmethod
    def restart_scheduler() -> RestartScheduler:
        """Stop the attached scheduler and start it again with the same orders."""
        return RestartScheduler()

    @staticmethod
    def replace_scheduler(scheduler: Scheduler) -> ReplaceScheduler:
        """Stop the attached scheduler (if any) and attach `scheduler` instead."""
        return ReplaceScheduler(scheduler)

    @staticmethod
    def run_payload(payload: Payload, args: Iterable[str] = (),
                    cgroup: str | None = None) -> RunPayload:
        """Start `payload` in the background with `args` after its default args, in
        `cgroup` (placed before it execs) or, with None, in the runner's own cgroup."""
        if isinstance(args, str):
            raise ConfigError(f"Op.run_payload: args={args!r} is a single string; hint: pass "
                              f"a list, e.g. [{args!r}]")
        return RunPayload(payload, tuple(str(a) for a in args), cgroup)

    @staticmethod
    def wait_payload(name: str, cgroup: str | None = None) -> WaitPayload:
        """Block until the payload `name` (in `cgroup`, if given) exits; record its metrics."""
        return WaitPayload(name, cgroup)

    @staticmethod
    def kill_payload(name: str, cgroup: str | None = None) -> KillPayload:
        """SIGKILL the payload `name` (in `cgroup`, if given); record its metrics."""
        return KillPayload(name, cgroup)

    @staticmethod
    def snapshot(name: str) -> CaptureSnapshot:
        """Freeze the guest, capture the scheduler's state under `name`, resume; then
        `ctx.snapshots[name]` reads it (a later capture under the same name replaces it)."""
        return CaptureSnapshot(name)

    @staticmethod
    def watch_snapshot(symbol: str) -> WatchSnapshot:
        """From now on, capture under `symbol` each time the guest kernel writes that
        variable (`ctx.snapshots[symbol]` holds the latest, `.hits` counts them). At most
        MAX_WATCHES per scenario: the fourth debug slot watches the scheduler's error exit."""
        return WatchSnapshot(symbol)


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what} {name!r} is not a cgroup name; hint: pass a non-empty "
                          "string such as 'cg_0'")


@dataclass(frozen=True, slots=True)
class AddCgroup(Op):
    name: str

    def __post_init__(self) -> None:
        _check_name("Op.add_cgroup:", self.name)


@dataclass(frozen=True, slots=True)
class RemoveCgroup(Op):
    name: str

    def __post_init__(self) -> None:
        _check_name("Op.remove_cgroup:", self.name)

    def names(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True, slots=True)
class SetCpuset(Op):
    cgroup: str
    spec: CpusetSpec

    def __post_init__(self) -> None:
        _check_name("Op.set_cpuset:", self.cgroup)
        if not isinstance(self.spec, CpusetSpec):
            raise ConfigError(f"Op.set_cpuset: {self.spec!r} is not a CpusetSpec; hint: e.g. "
                              "CpusetSpec.llc(0)")

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)


@dataclass(frozen=True, slots=True)
class ClearCpuset(Op):
    cgroup: str

    def __post_init__(self) -> None:
        _check_name("Op.clear_cpuset:", self.cgroup)

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)


@dataclass(frozen=True, slots=True)
class SwapCpusets(Op):
    a: str
    b: str

    def __post_init__(self) -> None:
        _check_name("Op.swap_cpusets:", self.a)
        _check_name("Op.swap_cpusets:", self.b)
        if self.a == self.b:
            raise ConfigError(f"Op.swap_cpusets({self.a!r}, {self.b!r}) swaps a cgroup with "
                              "itself, which changes nothing; hint: name two cgroups")

    def names(self) -> tuple[str, ...]:
        return (self.a, self.b)


@dataclass(frozen=True, slots=True)
class Spawn(Op):
    cgroup: str
    work: WorkType = field(default_factory=SpinWait)
    workers: int | None = None

    def __post_init__(self) -> None:
        _check_name("Op.spawn:", self.cgroup)
        if not isinstance(self.work, WorkType):
            raise ConfigError(f"Op.spawn: work {self.work!r} is not a work type; hint: pass "
                              "e.g. work.SpinWait()")
        if self.workers is not None and (not is_int(self.workers) or self.workers < 1):
            raise ConfigError(f"Op.spawn: workers={self.workers!r} is not a positive count; "
                              "hint: spawn at least one worker, or None for "
                              "ctx.workers_per_cgroup")
        group = self.work.group_size
        if self.workers is not None and group is not None and self.workers % group:
            raise ConfigError(f"Op.spawn: workers={self.workers} is not a multiple of "
                              f"{self.work.name}'s group size {group}; hint: use "
                              f"workers={max(group, self.workers - self.workers % group)}")

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)


@dataclass(frozen=True, slots=True)
class StopCgroup(Op):
    name: str

    def __post_init__(self) -> None:
        _check_name("Op.stop_cgroup:", self.name)

    def names(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True, slots=True)
class SetAffinity(Op):
    cgroup: str
    spec: CpusetSpec

    def __post_init__(self) -> None:
        _check_name("Op.set_affinity:", self.cgroup)
        if not isinstance(self.spec, CpusetSpec):
            raise ConfigError(f"Op.set_affinity: {self.spec!r} is not a CpusetSpec; hint: "
                              "e.g. CpusetSpec.exact([0])")

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)


@dataclass(frozen=True, slots=True)
class MoveAllTasks(Op):
    src: str
    dst: str

    def __post_init__(self) -> None:
        _check_name("Op.move_all_tasks:", self.src)
        _check_name("Op.move_all_tasks:", self.dst)
        if self.src == self.dst:
            raise ConfigError(f"Op.move_all_tasks({self.src!r}, {self.dst!r}) moves a cgroup's "
                              "tasks into itself; hint: name another destination cgroup")

    def names(self) -> tuple[str, ...]:
        return (self.src, self.dst)


@dataclass(frozen=True, slots=True)
class FreezeCgroup(Op):
    name: str

    def __post_init__(self) -> None:
        _check_name("Op.freeze_cgroup:", self.name)

    def names(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True, slots=True)
class UnfreezeCgroup(Op):
    name: str

    def __post_init__(self) -> None:
        _check_name("Op.unfreeze_cgroup:", self.name)

    def names(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True, slots=True)
class CaptureCgroupProcs(Op):
    tag: str
    cgroup: str

    def __post_init__(self) -> None:
        if not isinstance(self.tag, str) or not self.tag:
            raise ConfigError(f"Op.capture_cgroup_procs: tag {self.tag!r} is empty; hint: "
                              "name the capture, e.g. 'before_move'")
        _check_name("Op.capture_cgroup_procs:", self.cgroup)

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)


def _check_scheduler(what: str, sched: object) -> None:
    if not isinstance(sched, Scheduler):
        raise ConfigError(f"{what} {sched!r} is not a Scheduler; hint: pass one built with "
                          "declare_scheduler(...)")
    if not sched.spec.has_active_scheduling():
        raise ConfigError(f"{what} {sched.name} is EEVDF, which is not attached but left "
                          "to; hint: Op.detach_scheduler() runs the rest under EEVDF")


class SchedulerOp(Op):
    """An op on the run's scheduler slot rather than on a cgroup."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AttachScheduler(SchedulerOp):
    scheduler: Scheduler

    def __post_init__(self) -> None:
        _check_scheduler("Op.attach_scheduler:", self.scheduler)

    def __repr__(self) -> str:
        return f"Op.attach_scheduler({self.scheduler.name})"


@dataclass(frozen=True, slots=True)
class DetachScheduler(SchedulerOp):
    pass


@dataclass(frozen=True, slots=True)
class RestartScheduler(SchedulerOp):
    pass


@dataclass(frozen=True, slots=True)
class ReplaceScheduler(SchedulerOp):
    scheduler: Scheduler

    def __post_init__(self) -> None:
        _check_scheduler("Op.replace_scheduler:", self.scheduler)

    def __repr__(self) -> str:
        return f"Op.replace_scheduler({self.scheduler.name})"


@dataclass(frozen=True, slots=True)
class RunPayload(Op):
    payload: Payload
    args: tuple[str, ...] = ()
    cgroup: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.payload, Payload):
            raise ConfigError(f"Op.run_payload: {self.payload!r} is not a Payload; hint: "
                              "build one with Payload.binary(...) or use ktstr.payloads")
        if self.cgroup is not None:
            _check_name("Op.run_payload: cgroup", self.cgroup)

    def names(self) -> tuple[str, ...]:
        return () if self.cgroup is None else (self.cgroup,)


def _check_payload_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}: payload name {name!r} is empty; hint: pass the "
                          "Payload's name, e.g. STRESS_NG.name")


@dataclass(frozen=True, slots=True)
class WaitPayload(Op):
    name: str
    cgroup: str | None = None

    def __post_init__(self) -> None:
        _check_payload_name("Op.wait_payload", self.name)
        if self.cgroup is not None:
            _check_name("Op.wait_payload: cgroup", self.cgroup)


@dataclass(frozen=True, slots=True)
class KillPayload(Op):
    name: str
    cgroup: str | None = None

    def __post_init__(self) -> None:
        _check_payload_name("Op.kill_payload", self.name)
        if self.cgroup is not None:
            _check_name("Op.kill_payload: cgroup", self.cgroup)


@dataclass(frozen=True, slots=True)
class CaptureSnapshot(Op):
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"Op.snapshot: name {self.name!r} is not a snapshot name; hint: "
                              "pass a non-empty string such as 'after_spawn'")

    def __repr__(self) -> str:
        return f"Op.snapshot({self.name!r})"


#: Watches a scenario may arm (seed 001: up to 3; slot 0 is the error-exit trigger).
MAX_WATCHES = 3


@dataclass(frozen=True, slots=True)
class WatchSnapshot(Op):
    symbol: str

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not re.fullmatch(r"[A-Za-z_][\w.$]*",
                                                                  self.symbol or ""):
            raise ConfigError(f"Op.watch_snapshot: {self.symbol!r} is not a kernel symbol "
                              "name; hint: name a kernel variable verbatim as in "
                              "/proc/kallsyms, e.g. 'sysctl_sched_rr_timeslice'")

    def __repr__(self) -> str:
        return f"Op.watch_snapshot({self.symbol!r})"
