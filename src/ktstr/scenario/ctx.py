"""`Ctx`: what a test body gets, the run's parameters and its cgroups.

The guest agent builds it with `Ctx.create(...)` (the scheduler already running,
the checks already merged defaults -> scheduler -> test) and closes it after the
body returns, which removes every cgroup the test created. Durations are float
seconds; a `datetime.timedelta` is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from ktstr.checks import Assert
from ktstr.errors import ConfigError
from ktstr.payloads import Payload, PayloadResult
from ktstr.payloads import start as start_payload
from ktstr.scenario.cgroups import CgroupManager
from ktstr.scenario.snapshot import SnapshotControl, Snapshots
from ktstr.scenario.topo import TestTopology
from ktstr.system.cgroup import CGROUP_ROOT, CgroupFs
from ktstr.validators import seconds
from ktstr.work import WorkType

if TYPE_CHECKING:
    from ktstr.scheduler import Scheduler

#: Seconds to let the scheduler see new cgroups and workers before the measured hold.
DEFAULT_SETTLE_S = 0.5


class SchedulerControl(Protocol):
    """What the scheduler ops drive: the run's scheduler slot (the guest agent's).

    `name`/`pid` are the attached scheduler's (None under EEVDF). Attaching the
    attached scheduler and detaching with none attached change nothing; attaching
    over another one and restarting with none attached are errors; `staged` names
    the schedulers that may be attached (the guest agent's slot implements this).
    """

    @property
    def name(self) -> str | None: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def staged(self) -> frozenset[str]: ...
    def attach(self, sched: Scheduler) -> None: ...
    def detach(self) -> None: ...
    def restart(self) -> None: ...
    def replace(self, sched: Scheduler) -> None: ...


@dataclass(slots=True)
class Ctx:
    """The scenario context; `checks` is the test's `Assert` (`assert` is a keyword).

    Not frozen: `current_step` advances while steps run (0 = baseline).
    """

    cgroups: CgroupManager
    topo: TestTopology
    checks: Assert
    duration: float
    settle: float = DEFAULT_SETTLE_S
    workers_per_cgroup: int = 2
    scheduler: SchedulerControl | None = None
    work_type_override: WorkType | None = None
    current_step: int = 0
    # Every payload run of the test, in order: the guest agent sends their metrics to the
    # sidecar even when the body does not return them.
    payload_runs: list[PayloadResult] = field(default_factory=list)
    # Takes and keeps the captures of Op.snapshot (the guest agent's link to the host).
    snapshot_control: SnapshotControl | None = None

    @classmethod
    def create(cls, *, checks: Assert, duration: float,
               workers_per_cgroup: int = 2, settle: float | timedelta = DEFAULT_SETTLE_S,
               scheduler: SchedulerControl | None = None, topo: TestTopology | None = None,
               cgroup_root: Path = CGROUP_ROOT, parent: str = "ktstr",
               work_type_override: WorkType | None = None,
               snapshot_control: SnapshotControl | None = None) -> Ctx:
        """Read the topology (unless given) and set up the parent cgroup. `duration` and
        `workers_per_cgroup` are the test's, validated by `@ktstr_test` where they enter."""
        settle_s = seconds(settle, "settle", allow_zero=True)
        if topo is None:
            topo = TestTopology.from_system()
        cgroups = CgroupManager(CgroupFs(cgroup_root), parent, topo=topo)
        return cls(cgroups=cgroups, topo=topo, checks=checks, duration=float(duration),
                   settle=settle_s, workers_per_cgroup=workers_per_cgroup,
                   scheduler=scheduler, work_type_override=work_type_override,
                   snapshot_control=snapshot_control)

    @property
    def sched_pid(self) -> int | None:
        """The attached scheduler's pid, as it is now (None under EEVDF): scheduler ops
        change it mid-run."""
        return self.scheduler.pid if self.scheduler is not None else None

    @property
    def snapshots(self) -> Snapshots:
        """The captures of this run by name: `ctx.snapshots["a"]` is the latest `Snapshot`
        taken by `Op.snapshot("a")`; an unknown name raises, listing those taken."""
        return Snapshots(self.snapshot_control)

    def payload(self, p: Payload, args: Iterable[str] = (), *, cgroup: str | None = None,
                timeout: float | None = None) -> PayloadResult:
        """Run `p` now and wait for it (at most `timeout` s, then SIGKILL): its metrics and
        verdict. `args` follow its default args; `cgroup` (created by the test) holds it
        from before it execs. Merge `.result` into the body's result to judge it."""
        if isinstance(args, str):
            raise ConfigError(f"ctx.payload: args={args!r} is a single string; hint: pass a "
                              f"list, e.g. [{args!r}]")
        cgroup_dir = None if cgroup is None else self.cgroups.path(cgroup)
        run = start_payload(p, list(args), cgroup=cgroup or "", cgroup_dir=cgroup_dir)
        result = run.wait(timeout)
        self.payload_runs.append(result)
        return result

    def close(self) -> None:
        """Remove the test's cgroups (and any task left in them)."""
        self.cgroups.close()

    def __enter__(self) -> Ctx:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
