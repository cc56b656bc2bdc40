"""`Op`: one change a step makes to the running scenario.

Each variant is a frozen dataclass; build them with the `Op.*` constructors
(`Op.add_cgroup("a")`, `Op.spawn("a", work.SpinWait(), 2)`, ...). A variant
owns everything about itself, in the module of its family:

- its fields, checked when it is built (`__post_init__`): what needs no context;
- `names()`: the cgroups it needs to exist when it is applied;
- `check(dry)`: its rule before anything runs, on the `DryRun` of the step list
  (cgroups alive, frozen, tags and watches used at that point); the default
  checks `names()`;
- `check_payloads(running)`: how it changes the payloads a step list starts;
- `apply(live)`: its effect on the `LiveScenario` of an `execute_steps` call.

`execute_steps` (steps.py) and `validate_steps` (validate.py) call these and
know no variant. Adding an op is one class in its family's module and one
constructor below:

- cgroup_ops: add/remove/stop/freeze/unfreeze a cgroup, spawn, move tasks, capture procs;
- cpuset_ops: set/clear/swap cpusets, set affinity;
- scheduler_ops: attach/detach/restart/replace the run's scheduler (`ctx.scheduler`);
- payload_ops: run/wait/kill a payload, addressed by its name and cgroup;
- snapshot_ops: capture the scheduler's state now or on each write of a symbol
  (`ctx.snapshot_control`, the host in a VM); `MAX_WATCHES`.

The variants subclass `Op`, so this module defines `Op` first and imports them
after it (the family modules import `Op` and `check_cgroup_name` from here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ktstr.errors import ConfigError
from ktstr.payloads import Payload
from ktstr.scenario.cpuset import CpusetSpec
from ktstr.scheduler import Scheduler
from ktstr.work import SpinWait, WorkType

if TYPE_CHECKING:
    from ktstr.scenario.dry_run import DryRun
    from ktstr.scenario.live import LiveScenario


class Op:
    """Base of every op variant; the static constructors are the public surface."""

    __slots__ = ()

    def names(self) -> tuple[str, ...]:
        """The cgroups this op needs to exist when it is applied."""
        return ()

    def check(self, dry: DryRun) -> None:
        """Raise ConfigError if this op cannot apply at this point of the step list,
        and record in `dry` what it changes there. By default: its `names()` exist."""
        dry.require_names(self)

    def check_payloads(self, running: list[tuple[str, str]]) -> None:
        """Update `running`, the (name, cgroup) of the payloads running before this op,
        to those running after it; raise ConfigError where that breaks a payload rule."""

    def apply(self, live: LiveScenario) -> None:
        """Make the change on the running scenario."""
        raise NotImplementedError(f"{type(self).__name__}.apply")

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


def check_cgroup_name(what: str, name: object) -> None:
    """Raise ConfigError unless `name` can name a cgroup; `what` starts the message."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what} {name!r} is not a cgroup name; hint: pass a non-empty "
                          "string such as 'cg_0'")


# The variants subclass Op: imported once it exists (see the module docstring).
from ktstr.scenario.ops.cgroup_ops import (  # noqa: E402
    AddCgroup,
    CaptureCgroupProcs,
    FreezeCgroup,
    MoveAllTasks,
    RemoveCgroup,
    Spawn,
    StopCgroup,
    UnfreezeCgroup,
)
from ktstr.scenario.ops.cpuset_ops import (  # noqa: E402
    ClearCpuset,
    SetAffinity,
    SetCpuset,
    SwapCpusets,
)
from ktstr.scenario.ops.payload_ops import KillPayload, RunPayload, WaitPayload  # noqa: E402
from ktstr.scenario.ops.scheduler_ops import (  # noqa: E402
    AttachScheduler,
    DetachScheduler,
    ReplaceScheduler,
    RestartScheduler,
    SchedulerOp,
)
from ktstr.scenario.ops.snapshot_ops import (  # noqa: E402
    MAX_WATCHES,
    CaptureSnapshot,
    WatchSnapshot,
)

__all__ = [
    "MAX_WATCHES",
    "AddCgroup",
    "AttachScheduler",
    "CaptureCgroupProcs",
    "CaptureSnapshot",
    "ClearCpuset",
    "DetachScheduler",
    "FreezeCgroup",
    "KillPayload",
    "MoveAllTasks",
    "Op",
    "RemoveCgroup",
    "ReplaceScheduler",
    "RestartScheduler",
    "RunPayload",
    "SchedulerOp",
    "SetAffinity",
    "SetCpuset",
    "Spawn",
    "StopCgroup",
    "SwapCpusets",
    "UnfreezeCgroup",
    "WaitPayload",
    "WatchSnapshot",
    "check_cgroup_name",
]
