"""Per-cgroup statistics from worker reports, and their scenario-wide roll-up.

`CgroupStats` is computed once per `Assert.assert_cgroup` call, whatever checks
are enabled: it is telemetry for the report and the sidecar, not a verdict.
`ScenarioStats` is a list of them in call order (`cg0`, `cg1`, ... in the
report are positions in that list, not cgroup names); every scenario-wide
figure is derived from the list, so merged results cannot drift from their
parts. The roll-up follows the Rust ktstr's `ScenarioStats`: workers,
migrations and iterations sum; `total_cpus` sums the per-cgroup distinct CPU
counts (a CPU shared by two cgroups counts twice); spread and gap take the
worst cgroup.

Units: percentages are percent of wall time, gaps milliseconds, latencies
microseconds, rates work units per CPU-second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ktstr.work.report import WorkerReport


@dataclass(frozen=True, slots=True)
class CgroupStats:
    """What one cgroup's workers got, as the checks saw it."""

    name: str = ""
    num_workers: int = 0
    num_cpus: int = 0  # distinct CPUs in the union of the workers' cpus_used
    avg_off_cpu_pct: float = 0.0
    min_off_cpu_pct: float = 0.0
    max_off_cpu_pct: float = 0.0
    spread: float = 0.0  # max_off_cpu_pct - min_off_cpu_pct, percentage points
    max_gap_ms: float = 0.0
    max_gap_cpu: int = -1  # CPU of the worker with the longest gap, -1 for none
    total_migrations: int = 0
    total_iterations: int = 0
    total_work_units: int = 0
    migration_ratio: float = 0.0  # migrations per iteration
    mean_work_rate: float = 0.0  # work units per CPU-second, mean over workers
    throughput_cv: float = 0.0  # stddev/mean of the per-worker work rates
    p99_wake_latency_us: float = 0.0  # worst worker p99 among those with samples
    mean_run_delay_us: float = 0.0
    worst_run_delay_us: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CgroupStats:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(slots=True)
class ScenarioStats:
    """Per-cgroup stats in the order the cgroups were checked, plus roll-ups."""

    cgroups: list[CgroupStats] = field(default_factory=list)

    @property
    def total_workers(self) -> int:
        return sum(c.num_workers for c in self.cgroups)

    @property
    def total_cpus(self) -> int:
        return sum(c.num_cpus for c in self.cgroups)

    @property
    def total_migrations(self) -> int:
        return sum(c.total_migrations for c in self.cgroups)

    @property
    def total_iterations(self) -> int:
        return sum(c.total_iterations for c in self.cgroups)

    @property
    def worst_spread(self) -> float:
        return max((c.spread for c in self.cgroups), default=0.0)

    @property
    def worst_gap_ms(self) -> float:
        return self._worst_gap().max_gap_ms

    @property
    def worst_gap_cpu(self) -> int:
        """CPU of the worst gap, from the same cgroup as `worst_gap_ms`."""
        return self._worst_gap().max_gap_cpu

    @property
    def worst_p99_wake_latency_us(self) -> float:
        return max((c.p99_wake_latency_us for c in self.cgroups), default=0.0)

    def _worst_gap(self) -> CgroupStats:
        worst = CgroupStats()
        for c in self.cgroups:  # first cgroup wins a tie, as a strict `>` merge does
            if c.max_gap_ms > worst.max_gap_ms:
                worst = c
        return worst

    def render(self) -> str:
        """The `--- stats ---` block of a failure report (without the blank line before it)."""
        lines = [
            "--- stats ---",
            f"{self.total_workers} workers, {self.total_cpus} cpus, "
            f"{self.total_migrations} migrations, worst_spread={self.worst_spread:.1f}%, "
            f"worst_gap={self.worst_gap_ms:.0f}ms",
        ]
        for i, c in enumerate(self.cgroups):
            lines.append(
                f"  cg{i}: workers={c.num_workers} cpus={c.num_cpus} spread={c.spread:.1f}% "
                f"gap={c.max_gap_ms:.0f}ms migrations={c.total_migrations} "
                f"iter={c.total_iterations}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The cgroup list plus the derived totals (for sidecar readers; ignored on load)."""
        return {
            "cgroups": [c.to_dict() for c in self.cgroups],
            "total_workers": self.total_workers,
            "total_cpus": self.total_cpus,
            "total_migrations": self.total_migrations,
            "total_iterations": self.total_iterations,
            "worst_spread": self.worst_spread,
            "worst_gap_ms": self.worst_gap_ms,
            "worst_gap_cpu": self.worst_gap_cpu,
            "worst_p99_wake_latency_us": self.worst_p99_wake_latency_us,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScenarioStats:
        return cls([CgroupStats.from_dict(c) for c in d.get("cgroups", [])])


def off_cpu_pcts(reports: Sequence[WorkerReport]) -> list[float]:
    """Off-CPU percentages of the workers that have a wall time (others say nothing)."""
    return [r.off_cpu_pct for r in reports if r.wall_time_ns > 0]


def work_rate(report: WorkerReport) -> float:
    """Work units per CPU-second; 0.0 for a worker that got no CPU time."""
    if report.cpu_time_ns <= 0:
        return 0.0
    return report.work_units / (report.cpu_time_ns / 1e9)


def mean_and_cv(values: Sequence[float]) -> tuple[float, float]:
    """Mean and coefficient of variation (population stddev / mean); CV 0 if mean <= 0."""
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    if mean <= 0:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(variance) / mean


def cgroup_stats(reports: Sequence[WorkerReport], name: str = "") -> CgroupStats:
    """Summarise one cgroup's workers."""
    pcts = off_cpu_pcts(reports)
    lo, hi = (min(pcts), max(pcts)) if pcts else (0.0, 0.0)
    gap_ms, gap_cpu = 0.0, -1
    for r in reports:  # the last of equal gaps wins, like Rust's max_by_key
        if gap_cpu == -1 or r.max_gap_ms >= gap_ms:
            gap_ms, gap_cpu = r.max_gap_ms, r.max_gap_cpu
    migrations = sum(r.migration_count for r in reports)
    iterations = sum(r.iterations for r in reports)
    mean_rate, cv = mean_and_cv([work_rate(r) for r in reports])
    delays_us = [r.run_delay_ns / 1000.0 for r in reports]
    return CgroupStats(
        name=name,
        num_workers=len(reports),
        num_cpus=len(frozenset().union(*(r.cpus_used for r in reports))),
        avg_off_cpu_pct=sum(pcts) / len(pcts) if pcts else 0.0,
        min_off_cpu_pct=lo,
        max_off_cpu_pct=hi,
        spread=hi - lo,
        max_gap_ms=gap_ms,
        max_gap_cpu=gap_cpu,
        total_migrations=migrations,
        total_iterations=iterations,
        total_work_units=sum(r.work_units for r in reports),
        migration_ratio=migrations / iterations if iterations else 0.0,
        mean_work_rate=mean_rate,
        throughput_cv=cv,
        p99_wake_latency_us=max(
            (r.wake_latency_us.p99 for r in reports if r.wake_latency_us.count > 0),
            default=0.0,
        ),
        mean_run_delay_us=sum(delays_us) / len(delays_us) if delays_us else 0.0,
        worst_run_delay_us=max(delays_us, default=0.0),
    )
