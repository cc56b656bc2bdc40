"""AssertResult: merge, the `--- stats ---` rendering, inconclusive, dict round trip."""

from __future__ import annotations

import json

import pytest

from ktstr.checks import Assert, AssertResult, CgroupStats, ScenarioStats
from ktstr.errors import KtstrError
from ktstr.work.report import WakeLatency, WorkerReport

WALL_NS = 10_000_000_000


def worker(tid: int, off_pct: float, cpu: int, *, gap_ms: float, migrations: int,
           iterations: int) -> WorkerReport:
    return WorkerReport(
        tid=tid,
        work_units=iterations,
        iterations=iterations,
        cpu_time_ns=round(WALL_NS * (1 - off_pct / 100)),
        wall_time_ns=WALL_NS,
        migration_count=migrations,
        cpus_used=frozenset({cpu}),
        max_gap_ms=gap_ms,
        max_gap_cpu=cpu,
        max_gap_at_ms=4200,
        wake_latency_us=WakeLatency(count=10, p50=5.0, p90=9.0, p99=12.5, max=20.0),
    )


def seed_scenario() -> AssertResult:
    """The two cgroups of the tutorial's failure example."""
    checks = Assert.default_checks()
    cg0 = checks.assert_cgroup(
        [worker(1, 10.0, 0, gap_ms=180, migrations=5, iterations=7615),
         worker(2, 32.4, 1, gap_ms=90, migrations=3, iterations=7615)],
        frozenset({0, 1}), name="background_spinner",
    )
    cg1 = checks.assert_cgroup(
        [worker(3, 20.0, 2, gap_ms=120, migrations=2, iterations=7435),
         worker(4, 24.1, 3, gap_ms=100, migrations=2, iterations=7435)],
        frozenset({2, 3}), name="phased_worker",
    )
    cg0.merge(cg1)
    return cg0


def test_str_renders_details_then_seed_stats_block() -> None:
    assert str(seed_scenario()) == (
        "  unfair cgroup: spread=22% (10-32%) 2 workers on 2 cpus (threshold 15%)\n"
        "\n"
        "--- stats ---\n"
        "4 workers, 4 cpus, 12 migrations, worst_spread=22.4%, worst_gap=180ms\n"
        "  cg0: workers=2 cpus=2 spread=22.4% gap=180ms migrations=8 iter=15230\n"
        "  cg1: workers=2 cpus=2 spread=4.1% gap=120ms migrations=4 iter=14870"
    )


def test_merge_accumulates_cgroups_and_rolls_up_worst() -> None:
    r = seed_scenario()
    s = r.stats
    assert not r.passed
    assert [c.name for c in s.cgroups] == ["background_spinner", "phased_worker"]
    assert (s.total_workers, s.total_cpus, s.total_migrations, s.total_iterations) == (
        4, 4, 12, 30100)
    assert s.worst_spread == pytest.approx(22.4)
    assert (s.worst_gap_ms, s.worst_gap_cpu) == (180, 0)
    assert s.worst_p99_wake_latency_us == 12.5


def test_total_cpus_sums_per_cgroup_counts_without_dedup() -> None:
    s = ScenarioStats([CgroupStats(num_cpus=2), CgroupStats(num_cpus=2)])
    assert s.total_cpus == 4


def test_worst_gap_cpu_stays_coupled_to_worst_gap_in_both_orders() -> None:
    a = ScenarioStats([CgroupStats(max_gap_ms=700, max_gap_cpu=0),
                       CgroupStats(max_gap_ms=200, max_gap_cpu=1)])
    b = ScenarioStats([CgroupStats(max_gap_ms=200, max_gap_cpu=1),
                       CgroupStats(max_gap_ms=700, max_gap_cpu=0)])
    assert (a.worst_gap_ms, a.worst_gap_cpu) == (b.worst_gap_ms, b.worst_gap_cpu) == (700, 0)


def test_merge_passed_is_conjunction() -> None:
    r = AssertResult.ok()
    r.merge(AssertResult.ok())
    assert r.passed
    r.merge(AssertResult.fail("tid 3 starved (0 work units)"))
    r.merge(AssertResult.ok())
    assert not r.passed
    assert r.details == ["tid 3 starved (0 work units)"]


def test_inconclusive_never_fails_and_reasons_join_on_merge() -> None:
    r = AssertResult.ok()
    other = AssertResult.ok()
    other.add_inconclusive("no monitor samples")
    r.merge(other)
    assert r.passed and r.inconclusive == "no monitor samples"
    third = AssertResult.ok()
    third.add_inconclusive("clock never moved")
    r.merge(third)
    assert r.inconclusive == "no monitor samples; clock never moved"
    assert str(r) == "  inconclusive: no monitor samples; clock never moved"


def test_merge_keeps_first_profile() -> None:
    r = AssertResult.ok()
    r.merge(Assert.default_checks(emulated=True).assert_cgroup([], None))
    assert r.profile == "emulation"


def test_ok_result_str_and_no_stats_block_without_cgroups() -> None:
    assert str(AssertResult.ok()) == "passed"
    assert "--- stats ---" not in str(AssertResult.fail("x"))


def test_stats_block_without_details_has_no_leading_blank_line() -> None:
    r = Assert.default_checks().assert_cgroup(
        [worker(1, 10.0, 0, gap_ms=5, migrations=0, iterations=1)], None)
    assert str(r).startswith("--- stats ---\n1 workers, 1 cpus, 0 migrations")


def test_dict_round_trip_through_json_is_equal() -> None:
    r = seed_scenario()
    r.add_inconclusive("throughput CV inside emulation noise")
    d = json.loads(json.dumps(r.to_dict()))
    back = AssertResult.from_dict(d)
    assert back == r
    assert str(back) == str(r)
    assert d["stats"]["worst_gap_ms"] == 180 and d["profile"] == "release"


def test_from_dict_malformed_raises_ktstr_error_with_hint() -> None:
    with pytest.raises(KtstrError, match=r"cannot read a check result.*hint"):
        AssertResult.from_dict({"details": []})
    with pytest.raises(KtstrError, match="'passed' must be a bool"):
        AssertResult.from_dict({"passed": "yes"})


def test_judged_reports_travel_with_the_result() -> None:
    from ktstr.checks import Assert
    from ktstr.work.report import WorkerReport

    reports = [WorkerReport(tid=7, work_units=10, cpu_time_ns=10**9, wall_time_ns=10**9,
                            cpus_used=frozenset({1, 2}), cgroup="ktstr/cg_0")]
    r = Assert.default_checks().assert_cgroup(reports, None, name="cg_0")
    other = Assert.default_checks().assert_cgroup([WorkerReport(tid=8, work_units=1)], None)
    r.merge(other)
    assert [w.tid for w in r.reports] == [7, 8]
    back = AssertResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.reports[0] == reports[0]
