"""`WorkerReport`: what one worker process did and what the kernel says it got.

The telemetry is read from the kernel where the kernel keeps it
(`/proc/<pid>/schedstat`, `/proc/<pid>/sched`, getrusage), not estimated by the
worker, so a report shows what the scheduler did. Reports cross process
boundaries (worker -> parent -> host) as plain dicts: `to_dict`/`from_dict`.

A value type of the work layer (a `Custom` work function returns one); the
workload layer fills in the kernel's figures and re-exports it as
`ktstr.workload.WorkerReport`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class WakeLatency:
    """Wake-to-run latency percentiles in microseconds over `count` wakeups."""

    count: int = 0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    max: float = 0.0


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """One worker's outcome. Times are nanoseconds unless the name says otherwise."""

    tid: int = 0
    group_idx: int = 0
    work_units: int = 0
    iterations: int = 0
    cpu_time_ns: int = 0  # on-CPU time (schedstat field 1)
    wall_time_ns: int = 0  # from the start barrier to the stop
    run_delay_ns: int = 0  # time runnable but waiting for a CPU (schedstat field 2)
    migration_count: int = 0  # se.nr_migrations
    cpus_used: frozenset[int] = frozenset()
    max_gap_ms: float = 0.0  # longest wall-clock gap between work-unit checkpoints
    max_gap_cpu: int = -1  # CPU the worker was on when that gap ended
    max_gap_at_ms: float = 0.0  # when that gap ended, ms since the worker started
    wake_latency_us: WakeLatency = field(default_factory=WakeLatency)
    voluntary_csw: int = 0
    involuntary_csw: int = 0
    cgroup: str = ""  # cgroup path relative to the cgroup2 root, "" for the root
    work_type: str = ""
    step: int = 0  # ctx.current_step when collected
    error: str = ""  # non-empty when the worker died or its work raised
    metrics: dict[str, float] = field(default_factory=dict)  # the work type's own figures
    notes: list[str] = field(default_factory=list)  # what the work could not do here

    @property
    def off_cpu_pct(self) -> float:
        """Share of wall time the worker was not on a CPU, in percent."""
        if self.wall_time_ns <= 0:
            return 0.0
        off = max(0, self.wall_time_ns - self.cpu_time_ns)
        return 100.0 * off / self.wall_time_ns

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cpus_used"] = sorted(self.cpus_used)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkerReport:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["cpus_used"] = frozenset(kw.get("cpus_used", ()))
        wl = kw.get("wake_latency_us")
        if isinstance(wl, dict):
            kw["wake_latency_us"] = WakeLatency(**wl)
        return cls(**kw)
