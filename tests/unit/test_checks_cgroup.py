"""Assert.assert_cgroup on synthetic WorkerReports: each check, exact detail lines."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ktstr.checks import Assert
from ktstr.work.report import WakeLatency, WorkerReport

WALL_NS = 10_000_000_000  # 10 s


def worker(
    tid: int,
    off_pct: float = 10.0,
    cpus: tuple[int, ...] = (0,),
    *,
    units: int = 1000,
    cpu_s: float | None = None,
    gap_ms: float = 50.0,
    gap_cpu: int | None = None,
    gap_at_ms: float = 1000.0,
    p99_us: float = 0.0,
    wake_count: int = 0,
) -> WorkerReport:
    """A worker that spent `off_pct` % of 10 s off-CPU (or `cpu_s` seconds on it)."""
    cpu_ns = round(WALL_NS * (1 - off_pct / 100)) if cpu_s is None else round(cpu_s * 1e9)
    return WorkerReport(
        tid=tid,
        work_units=units,
        iterations=units,
        cpu_time_ns=cpu_ns,
        wall_time_ns=WALL_NS,
        cpus_used=frozenset(cpus),
        max_gap_ms=gap_ms,
        max_gap_cpu=cpus[0] if gap_cpu is None else gap_cpu,
        max_gap_at_ms=gap_at_ms,
        wake_latency_us=WakeLatency(count=wake_count, p50=1.0, p90=2.0, p99=p99_us, max=p99_us),
    )


DEFAULTS = Assert.default_checks()
EMULATED = Assert.default_checks(emulated=True)


def test_fair_cgroup_passes_with_defaults() -> None:
    r = DEFAULTS.assert_cgroup([worker(1, 10, (0,)), worker(2, 12, (1,))], frozenset({0, 1}))
    assert r.passed and r.details == [] and r.inconclusive is None
    assert r.profile == "release"


# --- starvation ---------------------------------------------------------------


def test_worker_with_zero_work_units_is_starved() -> None:
    r = DEFAULTS.assert_cgroup([worker(1), worker(7, units=0)], None)
    assert not r.passed
    assert r.details == ["tid 7 starved (0 work units)"]


def test_not_starved_false_disables_starvation_spread_and_gap() -> None:
    off = DEFAULTS.merge(Assert(not_starved=False))
    reports = [worker(1, 10, gap_ms=9000), worker(7, 80, units=0)]
    assert off.assert_cgroup(reports, None).passed
    assert len(DEFAULTS.assert_cgroup(reports, None).details) == 3


# --- fairness spread ----------------------------------------------------------


def test_unfair_spread_fails_with_seed_line() -> None:
    r = DEFAULTS.assert_cgroup([worker(1, 10, (0,)), worker(2, 32, (1,))], None)
    assert r.details == ["unfair cgroup: spread=22% (10-32%) 2 workers on 2 cpus (threshold 15%)"]


def test_spread_counts_distinct_cpus_of_the_union_and_every_worker() -> None:
    reports = [worker(1, 10, (0, 1)), worker(2, 40, (1, 2)), worker(3, 20, (2,))]
    r = DEFAULTS.assert_cgroup(reports, None)
    assert r.details == ["unfair cgroup: spread=30% (10-40%) 3 workers on 3 cpus (threshold 15%)"]


def test_spread_exactly_at_threshold_passes_above_fails() -> None:
    at = [worker(1, 10), worker(2, 25)]
    above = [worker(1, 10), worker(2, 25.5)]
    assert DEFAULTS.assert_cgroup(at, None).passed
    assert not DEFAULTS.assert_cgroup(above, None).passed


def test_spread_ignores_workers_without_wall_time_and_needs_two() -> None:
    no_wall = WorkerReport(tid=9, work_units=5, cpus_used=frozenset({3}))
    r = DEFAULTS.assert_cgroup([worker(1, 90), no_wall], None)
    assert r.passed
    assert r.stats.cgroups[0].spread == 0.0


def test_custom_spread_threshold_used_and_printed() -> None:
    a = DEFAULTS.merge(Assert(max_spread_pct=25.0))
    assert a.assert_cgroup([worker(1, 10), worker(2, 32)], None).passed
    r = a.assert_cgroup([worker(1, 10), worker(2, 40)], None)
    assert r.details == ["unfair cgroup: spread=30% (10-40%) 2 workers on 1 cpus (threshold 25%)"]


def test_emulation_profile_spread_threshold_is_35() -> None:
    reports = [worker(1, 10), worker(2, 40)]
    assert EMULATED.assert_cgroup(reports, None).passed
    r = EMULATED.assert_cgroup([worker(1, 10), worker(2, 50)], None)
    assert r.details[0].endswith("(threshold 35%)")


def test_unset_spread_falls_back_to_profile_default() -> None:
    r = Assert(not_starved=True).assert_cgroup([worker(1, 10), worker(2, 32)], None)
    assert r.details == ["unfair cgroup: spread=22% (10-32%) 2 workers on 1 cpus (threshold 15%)"]


# --- scheduling gap -----------------------------------------------------------


def test_gap_above_threshold_is_stuck_with_seed_line() -> None:
    reports = [worker(1), worker(7, gap_ms=2500, gap_cpu=3, gap_at_ms=4200)]
    r = DEFAULTS.assert_cgroup(reports, None)
    assert r.details == ["tid 7 stuck 2500ms on cpu3 at +4200ms (threshold 2000ms)"]


def test_gap_custom_threshold_and_boundary() -> None:
    a = DEFAULTS.merge(Assert(max_gap_ms=1000))
    at = [worker(7, gap_ms=1000)]
    assert a.assert_cgroup(at, None).passed
    r = a.assert_cgroup([worker(7, gap_ms=1500, gap_cpu=3, gap_at_ms=4200)], None)
    assert r.details == ["tid 7 stuck 1500ms on cpu3 at +4200ms (threshold 1000ms)"]


def test_emulation_gap_threshold_is_3000() -> None:
    assert EMULATED.assert_cgroup([worker(1, gap_ms=2900)], None).passed
    r = EMULATED.assert_cgroup([worker(1, gap_ms=3100)], None)
    assert r.details[0].endswith("(threshold 3000ms)")


# --- isolation ----------------------------------------------------------------


ISO = DEFAULTS.merge(Assert(isolation=True))


def test_isolation_passes_when_workers_stay_in_cpuset() -> None:
    r = ISO.assert_cgroup([worker(1, cpus=(0, 1)), worker(2, cpus=(1,))], frozenset({0, 1}))
    assert r.passed


def test_isolation_names_tid_unexpected_cpus_and_allowed_set() -> None:
    r = ISO.assert_cgroup([worker(1, cpus=(0, 1)), worker(5, cpus=(1, 3, 4))], {0, 1})
    assert r.details == ["tid 5 ran on unexpected CPUs {3, 4} (allowed 0-1)"]


def test_isolation_off_by_default_and_skipped_without_cpuset() -> None:
    escaped = [worker(5, cpus=(3,))]
    assert DEFAULTS.assert_cgroup(escaped, frozenset({0})).passed
    assert ISO.assert_cgroup(escaped, None).passed


# --- throughput CV ------------------------------------------------------------


def rate_workers(*units: int) -> list[WorkerReport]:
    """Workers with 2 CPU-seconds each, so rate = units / 2."""
    return [worker(i + 1, units=u, cpu_s=2.0) for i, u in enumerate(units)]


def test_throughput_cv_passes_on_equal_rates_fails_on_unequal() -> None:
    a = DEFAULTS.merge(Assert(max_throughput_cv=0.5))
    assert a.assert_cgroup(rate_workers(1000, 1100), None).passed
    # rates 250 and 1750: mean 1000, population stddev 750 -> CV 0.75
    r = a.assert_cgroup(rate_workers(500, 3500), None)
    assert r.details == ["throughput CV 0.750 exceeds limit 0.500 (mean=1000 work/cpu_s)"]


def test_throughput_cv_needs_two_workers_and_positive_mean() -> None:
    a = Assert(max_throughput_cv=0.0)
    assert a.assert_cgroup(rate_workers(1000), None).passed
    no_cpu = [worker(1, units=5, cpu_s=0.0), worker(2, units=5, cpu_s=0.0)]
    assert a.assert_cgroup(no_cpu, None).passed


def test_emulation_cv_below_noise_threshold_is_inconclusive_not_failed() -> None:
    a = EMULATED.merge(Assert(max_throughput_cv=0.2))
    # rates 500 and 800: mean 650, population stddev 150 -> CV 0.231, inside the noise
    r = a.assert_cgroup(rate_workers(1000, 1600), None)
    assert r.passed and r.details == []
    assert r.inconclusive == (
        "throughput CV 0.231 exceeds limit 0.200 (mean=650 work/cpu_s): inconclusive under "
        "emulation, CV noise floor 0.28 (limits below 0.30 are not judged)"
    )
    assert "inconclusive: throughput CV 0.231" in str(r)
    assert r.to_dict()["inconclusive"] == r.inconclusive


def test_emulation_cv_beyond_the_noise_fails_even_with_a_low_limit() -> None:
    a = EMULATED.merge(Assert(max_throughput_cv=0.2))
    r = a.assert_cgroup(rate_workers(500, 3500), None)
    assert not r.passed and r.inconclusive is None
    assert r.details == ["throughput CV 0.750 exceeds limit 0.200 (mean=1000 work/cpu_s)"]


def test_emulation_cv_threshold_above_noise_is_judged() -> None:
    a = EMULATED.merge(Assert(max_throughput_cv=0.5))
    r = a.assert_cgroup(rate_workers(500, 3500), None)
    assert not r.passed and r.inconclusive is None
    assert r.details == ["throughput CV 0.750 exceeds limit 0.500 (mean=1000 work/cpu_s)"]


def test_release_cv_below_noise_threshold_still_fails() -> None:
    r = DEFAULTS.merge(Assert(max_throughput_cv=0.2)).assert_cgroup(rate_workers(500, 3500), None)
    assert not r.passed and r.inconclusive is None


# --- minimum work rate --------------------------------------------------------


def test_min_work_rate_fails_slow_worker_only() -> None:
    a = DEFAULTS.merge(Assert(min_work_rate=400.0))
    r = a.assert_cgroup(rate_workers(1000, 600), None)  # 500/s and 300/s
    assert r.details == ["worker 2 throughput 300 work/cpu_s below floor 400"]


def test_min_work_rate_worker_without_cpu_time_has_rate_zero() -> None:
    r = Assert(min_work_rate=1.0).assert_cgroup([worker(4, units=10, cpu_s=0.0)], None)
    assert r.details == ["worker 4 throughput 0 work/cpu_s below floor 1"]


@pytest.mark.parametrize(
    ("units", "verdict"),
    [
        (800, "pass"),  # 400/s >= 400
        (400, "inconclusive"),  # 200/s, x2.7 = 540 >= 400
        (298, "inconclusive"),  # 149/s, x2.7 = 402.3 >= 400
        (290, "fail"),  # 145/s, x2.7 = 391.5 < 400
    ],
)
def test_emulation_min_work_rate_within_boot_variation_is_inconclusive(
    units: int, verdict: str
) -> None:
    r = EMULATED.merge(Assert(min_work_rate=400.0)).assert_cgroup(rate_workers(units), None)
    got = "fail" if not r.passed else ("inconclusive" if r.inconclusive else "pass")
    assert got == verdict
    if verdict == "inconclusive":
        assert r.inconclusive is not None
        assert r.inconclusive.endswith(
            "below floor 400: inconclusive under emulation, work rate varies 2.7x between boots"
        )


# --- p99 wake latency ---------------------------------------------------------


def test_p99_wake_latency_checked_only_for_workers_with_samples() -> None:
    a = Assert(max_p99_wake_latency_us=100.0)
    reports = [
        worker(1, p99_us=80.0, wake_count=500),
        worker(2, p99_us=900.0, wake_count=0),  # no samples: not judged
        worker(3, p99_us=250.5, wake_count=1200),
    ]
    r = a.assert_cgroup(reports, None)
    assert r.details == ["tid 3 p99 wake latency 250.5us exceeds limit 100.0us (1200 samples)"]


# --- ordering and stats -------------------------------------------------------


def test_details_order_starved_unfair_stuck_isolation() -> None:
    a = ISO
    reports = [worker(1, 10, (0,)), worker(2, 60, (5,), units=0, gap_ms=2500, gap_at_ms=9)]
    r = a.assert_cgroup(reports, {0, 1})
    assert [d.split()[0] + " " + d.split()[1] for d in r.details] == [
        "tid 2", "unfair cgroup:", "tid 2", "tid 2"
    ]
    assert "starved" in r.details[0] and "stuck" in r.details[2] and "unexpected" in r.details[3]


def test_cgroup_stats_computed_even_without_checks() -> None:
    reports = [
        WorkerReport(tid=1, work_units=10, iterations=100, cpu_time_ns=1, wall_time_ns=10,
                     migration_count=3, cpus_used=frozenset({0, 1}), max_gap_ms=40,
                     max_gap_cpu=1, run_delay_ns=2000),
        WorkerReport(tid=2, work_units=10, iterations=50, cpu_time_ns=5, wall_time_ns=10,
                     migration_count=2, cpus_used=frozenset({1, 2}), max_gap_ms=70,
                     max_gap_cpu=2, run_delay_ns=4000),
    ]
    r = Assert.NO_OVERRIDES.assert_cgroup(reports, None, name="cg_0")
    assert r.passed
    (s,) = r.stats.cgroups
    assert (s.name, s.num_workers, s.num_cpus) == ("cg_0", 2, 3)
    assert (s.min_off_cpu_pct, s.max_off_cpu_pct, s.spread) == (50.0, 90.0, 40.0)
    assert (s.max_gap_ms, s.max_gap_cpu) == (70, 2)
    assert (s.total_migrations, s.total_iterations, s.total_work_units) == (5, 150, 20)
    assert s.mean_run_delay_us == 3.0 and s.worst_run_delay_us == 4.0


def test_empty_cgroup_passes_and_still_gets_a_stats_entry() -> None:
    r = DEFAULTS.assert_cgroup([], None)
    assert r.passed
    assert r.stats.cgroups[0].num_workers == 0


def test_a_worker_that_failed_fails_the_cgroup_whatever_the_checks() -> None:
    broken = replace(worker(3, units=50), error="Custom work 'x' raised ValueError: no")
    r = Assert.NO_OVERRIDES.assert_cgroup([worker(1, units=50), broken], None)
    assert not r.passed
    assert r.details == ["tid 3 failed: Custom work 'x' raised ValueError: no"]
