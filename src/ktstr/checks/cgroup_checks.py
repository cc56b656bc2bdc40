"""The per-cgroup checks, each a small function over one cgroup's `WorkerReport`s.

Semantics and detail-line formats follow the Rust ktstr (`src/assert.rs`:
`assert_not_starved`, `assert_isolation`, `assert_throughput_parity`,
`assert_benchmarks`):

- starvation: a worker with 0 work units -> `tid 7 starved (0 work units)`;
- fairness spread: max - min off-CPU % over the workers that have a wall time,
  judged only when at least two have one, failing when strictly above the
  threshold; "N workers" counts every report, "N cpus" the distinct CPUs in
  the union of their `cpus_used`; figures rounded to whole percent;
- scheduling gap: a worker whose longest checkpoint gap is strictly above the
  threshold -> `tid 7 stuck 1500ms on cpu3 at +4200ms (threshold 2000ms)`
  (the Rust code omits the tid);
- isolation: a worker that ran on a CPU outside the cpuset, when one is given;
- throughput CV: population stddev / mean of work units per CPU-second across
  the workers, judged only with two or more workers and a positive mean;
- minimum work rate: each worker's work units per CPU-second (0 without CPU
  time) against the floor;
- p99 wake latency: each worker's p99 in microseconds, for workers with samples.

Each function appends to an `AssertResult`; rate-based ones take the profile
and report figures inside the emulation noise as inconclusive (profile.py).
"""

from __future__ import annotations

from collections.abc import Sequence, Set

from ktstr.checks import profile as prof
from ktstr.checks.result import AssertResult
from ktstr.checks.stats import CgroupStats, mean_and_cv, off_cpu_pcts, work_rate
from ktstr.topology import format_cpulist
from ktstr.work.report import WorkerReport


def check_worker_errors(reports: Sequence[WorkerReport], result: AssertResult) -> None:
    """Fail every worker that died or whose work raised: its numbers mean nothing."""
    for r in reports:
        if r.error:
            result.add_failure(f"tid {r.tid} failed: {r.error}")


def check_starvation(reports: Sequence[WorkerReport], result: AssertResult) -> None:
    """Fail every worker that completed no work unit."""
    for r in reports:
        if r.work_units == 0:
            result.add_failure(f"tid {r.tid} starved (0 work units)")


def check_spread(
    reports: Sequence[WorkerReport], stats: CgroupStats, limit_pct: float, result: AssertResult
) -> None:
    """Fail the cgroup when its off-CPU spread exceeds `limit_pct` percentage points."""
    if len(off_cpu_pcts(reports)) < 2 or stats.spread <= limit_pct:
        return
    result.add_failure(
        f"unfair cgroup: spread={stats.spread:.0f}% "
        f"({stats.min_off_cpu_pct:.0f}-{stats.max_off_cpu_pct:.0f}%) "
        f"{stats.num_workers} workers on {stats.num_cpus} cpus (threshold {limit_pct:.0f}%)"
    )


def check_gaps(reports: Sequence[WorkerReport], limit_ms: float, result: AssertResult) -> None:
    """Fail every worker whose longest scheduling gap exceeds `limit_ms`."""
    for r in reports:
        if r.max_gap_ms > limit_ms:
            result.add_failure(
                f"tid {r.tid} stuck {r.max_gap_ms:.0f}ms on cpu{r.max_gap_cpu} "
                f"at +{r.max_gap_at_ms:.0f}ms (threshold {limit_ms:.0f}ms)"
            )


def check_isolation(
    reports: Sequence[WorkerReport], cpuset: Set[int], result: AssertResult
) -> None:
    """Fail every worker that ran on a CPU outside `cpuset`."""
    cpus = frozenset(cpuset)
    allowed = format_cpulist(cpus) or "none"
    for r in reports:
        bad = sorted(r.cpus_used - cpus)
        if bad:
            listed = ", ".join(str(c) for c in bad)
            result.add_failure(
                f"tid {r.tid} ran on unexpected CPUs {{{listed}}} (allowed {allowed})"
            )


def check_throughput_cv(
    reports: Sequence[WorkerReport], limit: float, profile: str | None, result: AssertResult
) -> None:
    """Fail when work per CPU-second varies across workers by more than `limit` (CV).

    Under emulation a threshold below `EMULATION_CV_JUDGED_FROM` sits inside the
    measured noise of fair runs, so a failure against it is inconclusive, unless
    the CV itself lies beyond that noise, which no fair run showed.
    """
    rates = [work_rate(r) for r in reports]
    mean, cv = mean_and_cv(rates)
    if len(rates) < 2 or mean <= 0 or cv <= limit:
        return
    line = f"throughput CV {cv:.3f} exceeds limit {limit:.3f} (mean={mean:.0f} work/cpu_s)"
    if (profile == prof.EMULATION and limit < prof.EMULATION_CV_JUDGED_FROM
            and cv <= prof.EMULATION_CV_JUDGED_FROM):
        result.add_inconclusive(
            f"{line}: inconclusive under emulation, CV noise floor "
            f"{prof.EMULATION_CV_NOISE_FLOOR:.2f} (limits below "
            f"{prof.EMULATION_CV_JUDGED_FROM:.2f} are not judged)"
        )
    else:
        result.add_failure(line)


def check_work_rate(
    reports: Sequence[WorkerReport], floor: float, profile: str | None, result: AssertResult
) -> None:
    """Fail every worker doing fewer than `floor` work units per CPU-second.

    Under emulation the absolute rate varies `EMULATION_RATE_VARIATION`-fold
    between boots, so a rate within that factor of the floor is inconclusive;
    a rate further below still fails.
    """
    for r in reports:
        rate = work_rate(r)
        if rate >= floor:
            continue
        line = f"worker {r.tid} throughput {rate:.0f} work/cpu_s below floor {floor:.0f}"
        if profile == prof.EMULATION and rate * prof.EMULATION_RATE_VARIATION >= floor:
            result.add_inconclusive(
                f"{line}: inconclusive under emulation, work rate varies "
                f"{prof.EMULATION_RATE_VARIATION}x between boots"
            )
        else:
            result.add_failure(line)


def check_wake_latency(
    reports: Sequence[WorkerReport], limit_us: float, result: AssertResult
) -> None:
    """Fail every worker whose p99 wake-to-run latency exceeds `limit_us`."""
    for r in reports:
        wl = r.wake_latency_us
        if wl.count > 0 and wl.p99 > limit_us:
            result.add_failure(
                f"tid {r.tid} p99 wake latency {wl.p99:.1f}us exceeds limit "
                f"{limit_us:.1f}us ({wl.count} samples)"
            )
