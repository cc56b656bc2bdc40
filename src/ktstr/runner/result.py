"""`RunResult`: how one test run in a VM ended, as the front ends and the sidecar see it.

Built once per run from returned values (ktstr.runner.vmrun). The sidecar is
its `to_dict()` plus the schema number; `from_dict` reads one back, also one
written before the results were typed (the JSON shape has not changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ktstr.monitor.sampling import MonitorOutcome
from ktstr.monitor.schedvars import SchedulerVars
from ktstr.protocol import Outcome, SchedulerRun
from ktstr.runner.boot import BootMode
from ktstr.scenario.snapshot import Snapshot
from ktstr.vm.perfmode import PerformanceRecord


@dataclass(frozen=True)
class RunResult:
    test_id: str
    outcome: Outcome
    topology: str
    kernel: str
    accel: str
    scheduler: str
    error: str = ""
    traceback: str = ""
    report: str = ""  # the detail lines and the --- stats --- block
    result: dict[str, Any] | None = None  # AssertResult.to_dict()
    profile: str = ""
    topology_seen: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    boot_s: float = 0.0  # qemu start -> ready for the test (hello, or restored), host wall clock
    boot_mode: BootMode | None = None  # None: no VM came up
    cpu_wait_s: float = 0.0  # waited for free host CPUs before qemu started (ktstr.vm.cpulock)
    # What performance mode did (pins, hugepages, SCHED_FIFO); None: not asked for
    performance: PerformanceRecord | None = None
    snapshot: str = ""  # key of the snapshot restored or saved by this run
    snapshot_save_s: float = 0.0  # the guest stood still this long while it was saved
    restore_fallback: str = ""  # why a snapshot failed to restore (the run then booted cold)
    guest_uptime_at_hello_s: float = 0.0
    body_s: float = 0.0
    boot_attempts: int = 0
    boot_crashes: list[str] = field(default_factory=list)  # emulator flakes, retried
    scheduler_run: SchedulerRun | None = None  # the one to report: the first that failed
    scheduler_runs: list[SchedulerRun] = field(default_factory=list)  # all, in start order
    monitor: MonitorOutcome | None = None  # None: the run never got that far
    # The captures by name (Op.snapshot, watches, on_error): the latest of each, with hits
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    scheduler_vars: SchedulerVars | None = None  # None: none requested
    console_log: str = ""
    console_tail: str = ""
    sidecar: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome in (Outcome.PASSED, Outcome.INCONCLUSIVE)

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's fields (every field, under its own name; `cpu_wait_s` only when
        the run waited and `performance` only in performance mode, so other runs have
        the sidecar's former shape)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.cpu_wait_s:
            del out["cpu_wait_s"]
        if self.performance is None:
            del out["performance"]
        else:
            out["performance"] = self.performance.to_dict()
        out["outcome"] = str(self.outcome)
        out["boot_mode"] = "" if self.boot_mode is None else str(self.boot_mode)
        out["scheduler_run"] = (None if self.scheduler_run is None
                                else self.scheduler_run.to_dict())
        out["scheduler_runs"] = [r.to_dict() for r in self.scheduler_runs]
        out["monitor"] = {} if self.monitor is None else self.monitor.to_dict()
        out["snapshots"] = {name: s.as_dict() for name, s in self.snapshots.items()}
        out["scheduler_vars"] = ({} if self.scheduler_vars is None
                                 else self.scheduler_vars.to_dict())
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunResult:
        """A result from a sidecar; fields it lacks take their defaults."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for key in ("test_id", "topology", "kernel", "accel", "scheduler"):
            kw.setdefault(key, "")
        kw["outcome"] = Outcome(d.get("outcome", Outcome.CRASHED))
        kw["boot_mode"] = BootMode(d["boot_mode"]) if d.get("boot_mode") else None
        run = d.get("scheduler_run")
        kw["scheduler_run"] = None if not run else SchedulerRun.from_dict(run)
        kw["scheduler_runs"] = [SchedulerRun.from_dict(r) for r in d.get("scheduler_runs", [])]
        kw["performance"] = (PerformanceRecord.from_dict(d["performance"])
                             if d.get("performance") else None)
        kw["monitor"] = MonitorOutcome.from_dict(d["monitor"]) if d.get("monitor") else None
        kw["scheduler_vars"] = SchedulerVars.from_dict(d.get("scheduler_vars") or {})
        kw["snapshots"] = {name: Snapshot(c) for name, c in (d.get("snapshots") or {}).items()}
        return cls(**kw)
