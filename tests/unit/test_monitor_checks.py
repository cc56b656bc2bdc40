"""The monitor's checks on synthetic sample series: every rule, its edges, and the report."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from ktstr.checks import Assert, AssertResult
from ktstr.errors import ConfigError
from ktstr.monitor.report import MonitorSummary, WatchdogResult
from ktstr.monitor.sample import CpuSample, MonitorSample
from ktstr.monitor.verdict import (
    default_stall_min_vcpu_ns,
    imbalance_ratio,
    judge_monitor,
    summarize_monitor,
)

DT = 0.125  # seconds between samples: exact in binary, so rates at a threshold are exact
NCPU = 4
MS = 1_000_000
DEFAULTS = Assert.default_checks()
STALL_NS = 100 * MS  # explicit, so the tests do not depend on the host's SC_CLK_TCK

CpuFn = Callable[[int, int], dict[str, object]]


def cpu(i: int, c: int, **over: object) -> CpuSample:
    """cpu `c` at sample `i`: one runnable spinner, a ticking clock, a vCPU that runs."""
    fields: dict[str, object] = dict(
        cpu=c, nr_running=1, clock_ns=1_000 * MS + i * 125 * MS + c, scx_nr_running=1,
        local_dsq_depth=0, curr_pid=100 + c, curr_comm="spin", vcpu_cpu_ns=i * 120 * MS,
    )
    fields.update(over)
    return CpuSample(**fields)  # type: ignore[arg-type]


def series(
    n: int,
    per_cpu: CpuFn | None = None,
    *,
    events: Callable[[int], dict[str, int]] | None = None,
    attached: Callable[[int], bool] = lambda i: True,
    ncpu: int = NCPU,
) -> list[MonitorSample]:
    out = []
    for i in range(n):
        cpus = tuple(cpu(i, c, **(per_cpu(i, c) if per_cpu else {})) for c in range(ncpu))
        on = attached(i)
        ev = (events(i) if events else {"select_cpu_fallback": 0, "dispatch_keep_last": 0})
        out.append(MonitorSample(index=i, t=100.0 + i * DT, jiffies=i * 25, attached=on,
                                 cpus=cpus, events=ev if on else {},
                                 ops_name="simple" if on else ""))
    return out


def judge(samples: list[MonitorSample], checks: Assert = DEFAULTS, **kw: object) -> AssertResult:
    kw.setdefault("warmup_samples", 0)
    kw.setdefault("stall_min_vcpu_ns", STALL_NS)
    return judge_monitor(samples, checks, **kw)  # type: ignore[arg-type]


def first_lines(result: AssertResult) -> list[str]:
    return [d.splitlines()[0] for d in result.details]


def overloaded(lo: int, hi: int, nr: int = 8) -> CpuFn:
    """cpu0 holds `nr` runnable tasks in samples lo..hi-1, the others one each."""
    return lambda i, c: {"nr_running": nr} if c == 0 and lo <= i < hi else {}


# --- a clean run -------------------------------------------------------------------------


def test_balanced_run_passes_and_shows_the_block() -> None:
    r = judge(series(40))
    assert r.passed and not r.details and r.inconclusive is None
    assert r.monitor[0] == ("samples: 40 taken, 0 warm-up dropped, 40 judged while attached "
                            "(simple), 0 detached, over 4.9s")


# --- imbalance -----------------------------------------------------------------------------


def test_imbalance_sustained_fails_with_the_api_line_and_evidence() -> None:
    r = judge(series(40, overloaded(10, 22)))
    assert not r.passed
    assert first_lines(r) == [
        "imbalance ratio 8.0 exceeded threshold 4.0 for 12 consecutive samples "
        "(ending at sample 21)"
    ]
    evidence = r.details[0].splitlines()[1]
    assert evidence.startswith("    at sample 21: cpu0: nr_running=8 ")
    assert "running spin (pid 100)" in evidence and "cpu1: nr_running=1" in evidence


def test_imbalance_run_broken_by_a_balanced_sample_restarts_the_count() -> None:
    def fn(i: int, c: int) -> dict[str, object]:
        return {"nr_running": 8} if c == 0 and 10 <= i < 19 and i != 14 else {}

    assert judge(series(30, fn)).passed  # runs of 4 and 4, five needed


def test_imbalance_exactly_at_threshold_passes_and_exactly_sustained_fails() -> None:
    assert judge(series(30, overloaded(5, 25, nr=4))).passed  # ratio 4.0 is not above 4.0
    r = judge(series(30, overloaded(5, 10, nr=5)))  # 5 samples, exactly sustained_samples
    assert first_lines(r) == [
        "imbalance ratio 5.0 exceeded threshold 4.0 for 5 consecutive samples "
        "(ending at sample 9)"
    ]
    assert judge(series(30, overloaded(5, 9, nr=5))).passed  # 4 samples


def test_imbalance_divides_by_at_least_one() -> None:
    def s(counts: list[int]) -> MonitorSample:
        return MonitorSample(index=0, t=0.0, jiffies=0, attached=True, cpus=tuple(
            cpu(0, c, nr_running=n) for c, n in enumerate(counts)))

    assert imbalance_ratio(s([3, 0, 0, 0])) == 3.0
    assert imbalance_ratio(s([6, 2, 3, 2])) == 3.0
    assert imbalance_ratio(s([0, 0])) == 0.0


def test_unset_threshold_turns_the_check_off() -> None:
    checks = DEFAULTS.merge(Assert(max_imbalance_ratio=100.0))
    assert judge(series(40, overloaded(10, 22)), checks).passed
    assert judge(series(40, overloaded(10, 22)), Assert()).passed  # nothing set: nothing judged


def test_sustained_samples_comes_from_the_assert() -> None:
    samples = series(40, overloaded(10, 22))
    assert judge(samples, DEFAULTS.merge(Assert(sustained_samples=13))).passed
    assert not judge(samples, DEFAULTS.merge(Assert(sustained_samples=12))).passed


# --- local DSQ depth ---------------------------------------------------------------------


def test_dsq_depth_sustained_fails_naming_the_cpu() -> None:
    def deep(i: int, c: int) -> dict[str, object]:
        return {"local_dsq_depth": 73, "nr_running": 74} if c == 2 and 20 <= i < 26 else {}

    r = judge(series(40, deep), DEFAULTS.merge(Assert(max_imbalance_ratio=1000.0)))
    assert first_lines(r) == [
        "local DSQ depth 73 on cpu2 exceeded threshold 50 for 6 consecutive samples "
        "(ending at sample 25)"
    ]
    assert "cpu2: nr_running=74 scx_nr_running=1 local_dsq=73 running spin (pid 102)" \
        in r.details[0]


def test_dsq_depth_at_threshold_passes() -> None:
    def at(i: int, c: int) -> dict[str, object]:
        return {"local_dsq_depth": 50} if c == 1 else {}

    assert judge(series(40, at)).passed


# --- rq clock stalls ---------------------------------------------------------------------


def frozen(target: int, lo: int, hi: int, **over: object) -> CpuFn:
    """cpu `target`'s clock stops at sample lo and stays still through sample hi-1."""
    def fn(i: int, c: int) -> dict[str, object]:
        if c != target or not lo <= i < hi:
            return {}
        return {"clock_ns": 1_000 * MS + lo * 125 * MS + c, "nr_running": 2, **over}
    return fn


def test_stall_sustained_fails_with_clock_and_vcpu_time() -> None:
    r = judge(series(40, frozen(1, 25, 32)))  # 6 still intervals: 25->26 ... 30->31
    clock = 1_000 * MS + 25 * 125 * MS + 1
    assert first_lines(r) == [
        f"rq_clock stall on cpu1 for 6 consecutive samples (ending at sample 31, clock={clock})"
    ]
    assert "cpu1: nr_running=2" in r.details[0]
    assert "vCPU got 720ms of host CPU since sample 25" in r.details[0]


def test_idle_cpu_with_a_still_clock_is_not_a_stall() -> None:
    assert judge(series(40, frozen(1, 10, 30, nr_running=0))).passed


def test_runnable_in_either_sample_is_enough() -> None:
    def fn(i: int, c: int) -> dict[str, object]:
        base = frozen(3, 10, 30)(i, c)
        return {**base, "nr_running": i % 2} if base else base  # 0,1,0,1...: never both idle

    r = judge(series(40, fn))
    assert first_lines(r)[0].startswith("rq_clock stall on cpu3 for 19 consecutive samples")


def test_descheduled_vcpu_is_not_a_stall() -> None:
    def fn(i: int, c: int) -> dict[str, object]:
        return {**frozen(1, 10, 30)(i, c), "vcpu_cpu_ns": i * 5 * MS} if c == 1 else {}

    r = judge(series(40, fn))  # 5 ms of host CPU per interval: below 100 ms
    assert r.passed and r.inconclusive is None


def test_vcpu_time_exactly_at_the_bar_counts_and_unknown_time_counts() -> None:
    def at_bar(i: int, c: int) -> dict[str, object]:
        return {**frozen(1, 10, 30)(i, c), "vcpu_cpu_ns": i * STALL_NS} if c == 1 else {}

    assert not judge(series(40, at_bar)).passed

    def unknown(i: int, c: int) -> dict[str, object]:
        base = frozen(1, 10, 30)(i, c)
        return {**base, "vcpu_cpu_ns": None} if base else base

    assert not judge(series(40, unknown)).passed  # no evidence of a descheduled vCPU


def test_stall_default_bar_is_ten_host_ticks() -> None:
    assert default_stall_min_vcpu_ns() == 10 * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def test_fail_on_stall_false_ignores_stalls() -> None:
    assert judge(series(40, frozen(1, 10, 30)), DEFAULTS.merge(Assert(fail_on_stall=False))).passed


def test_unwritten_clock_is_not_a_stall() -> None:
    assert judge(series(40, frozen(1, 10, 30, clock_ns=0))).passed


# --- event rates ----------------------------------------------------------------------------


def counting(per_interval: dict[str, int], lo: int, hi: int) -> Callable[[int], dict[str, int]]:
    """Counters that grow by `per_interval` in each interval ending at samples lo..hi-1."""
    def fn(i: int) -> dict[str, int]:
        done = max(0, min(i, hi - 1) - lo + 1)
        return {name: 1000 + per * done for name, per in per_interval.items()}
    return fn


def test_fallback_rate_sustained_fails() -> None:
    # Rates are per guest CPU: 32 events per CPU per 0.125 s interval = 256/s per CPU.
    r = judge(series(40, events=counting({"select_cpu_fallback": 32 * NCPU}, 10, 15)))
    assert first_lines(r) == [
        "fallback rate 256.0/s per CPU exceeded threshold 200.0/s for 5 consecutive "
        "intervals (ending at sample 14)"
    ]
    assert "select_cpu_fallback 1512 -> 1640 over 0.125s from sample 13" in r.details[0]


def test_keep_last_rate_sustained_fails() -> None:
    r = judge(series(40, events=counting({"dispatch_keep_last": 16 * NCPU}, 30, 37)))
    assert first_lines(r) == [
        "keep_last rate 128.0/s per CPU exceeded threshold 100.0/s for 7 consecutive "
        "intervals (ending at sample 36)"
    ]


def test_a_summed_rate_over_the_threshold_passes_when_each_cpu_is_under_it() -> None:
    # scx_simple, one spinner per CPU: every slice expiry keeps the last task, ~27/s per
    # CPU under TCG, 110/s summed over 4: healthy, not a keep_last storm.
    assert judge(series(40, events=counting({"dispatch_keep_last": 14}, 0, 40))).passed


def test_rates_exactly_at_threshold_pass() -> None:
    ev = counting({"select_cpu_fallback": 25 * NCPU, "dispatch_keep_last": 12 * NCPU},
                  5, 35)  # 200/s and 96/s per CPU
    assert judge(series(40, events=ev)).passed


def test_counter_reset_breaks_the_run() -> None:
    def ev(i: int) -> dict[str, int]:
        grow = counting({"select_cpu_fallback": 40 * NCPU}, 10, 19)(i)["select_cpu_fallback"]
        return {"select_cpu_fallback": grow - (1500 if i >= 14 else 0)}  # reloaded at 14

    assert judge(series(40, events=ev)).passed  # runs of 4 and 4: the reset is no rate
    assert not judge(series(40, events=counting({"select_cpu_fallback": 40 * NCPU}, 10,
                                                19))).passed


# --- warm-up and attachment -------------------------------------------------------------


def test_warmup_samples_are_dropped() -> None:
    samples = series(40, overloaded(0, 20))
    assert judge_monitor(samples, DEFAULTS, stall_min_vcpu_ns=STALL_NS).passed  # default 20
    assert not judge(samples, warmup_samples=0).passed
    assert not judge(samples, warmup_samples=10).passed


def test_detached_samples_are_not_judged_and_break_runs() -> None:
    samples = series(40, overloaded(10, 30), attached=lambda i: not 10 <= i < 30)
    assert judge(samples).passed
    gap = series(40, overloaded(10, 19), attached=lambda i: i != 14)  # 4 + 4 around it
    assert judge(gap).passed
    stall = series(40, frozen(1, 10, 30), attached=lambda i: i % 4 != 0)  # 3 pairs at most
    assert judge(stall).passed


# --- untrustworthy data -----------------------------------------------------------------


def assert_inconclusive(result: AssertResult, words: str) -> None:
    assert result.passed and not result.details
    assert result.inconclusive is not None and words in result.inconclusive, result.inconclusive


def test_no_samples_is_inconclusive() -> None:
    assert_inconclusive(judge([]), "no samples were taken")
    assert_inconclusive(judge(series(15), warmup_samples=20),
                        "no samples left after the 20 warm-up samples (15 taken)")


def test_never_attached_is_inconclusive_only_when_a_scheduler_was_expected() -> None:
    samples = series(30, overloaded(0, 30), attached=lambda i: False)
    assert_inconclusive(judge(samples), "no sample with a sched_ext scheduler attached")
    r = judge(samples, scheduler_expected=False)
    assert r.passed and r.inconclusive is None and not r.details


def test_a_short_run_without_a_scheduler_is_not_inconclusive() -> None:
    # Under EEVDF the monitor judges nothing; a 1.5 s body leaves fewer samples than the
    # warm-up (seen: a 2n2l2c2t topology test reported inconclusive), or none at all.
    for samples in (series(15, attached=lambda i: False), []):
        r = judge(samples, scheduler_expected=False, warmup_samples=20)
        assert r.passed and r.inconclusive is None and not r.details
    assert_inconclusive(judge(series(15), warmup_samples=20),
                        "no samples left after the 20 warm-up samples (15 taken)")


def test_clocks_that_never_move_are_inconclusive() -> None:
    samples = series(30, lambda i, c: {"clock_ns": 5, "nr_running": 9 if c == 0 else 1})
    assert_inconclusive(judge(samples), "rq->clock never moved on any CPU over 30 samples")


@pytest.mark.parametrize(("over", "words"), [
    ({"nr_running": -1}, "sample 12: cpu2 nr_running=-1 is negative"),
    ({"local_dsq_depth": 20_000}, "cpu2 local_dsq_depth=20000 is above 10000"),
    ({"clock_ns": 1}, "rq->clock of cpu2 went backwards between samples 11 and 12"),
    ({"vcpu_cpu_ns": 0}, "host CPU time of cpu2's vCPU thread went backwards"),
])
def test_impossible_values_are_inconclusive(over: dict[str, object], words: str) -> None:
    samples = series(30, lambda i, c: {"nr_running": 8, **over} if (i, c) == (12, 2) else {})
    assert_inconclusive(judge(samples), words)


def test_time_going_backwards_or_negative_counters_are_inconclusive() -> None:
    samples = series(30)
    samples[7] = MonitorSample(**{**samples[7].to_dict(), "cpus": samples[7].cpus, "t": 0.0})
    assert_inconclusive(judge(samples), "host time went backwards: sample 7 at t=0.000s")
    neg = series(30, events=lambda i: {"select_cpu_fallback": -5 if i == 3 else 0})
    assert_inconclusive(judge(neg), "event counter select_cpu_fallback=-5 is negative")


# --- the summary and the block ------------------------------------------------------------


def test_summary_figures() -> None:
    samples = series(46, overloaded(30, 31, nr=6),
                     events=counting({"select_cpu_fallback": 4, "dispatch_keep_last": 2}, 21, 45),
                     attached=lambda i: i != 40)
    s = summarize_monitor(samples, stall_min_vcpu_ns=STALL_NS)
    assert (s.samples, s.warmup_dropped, s.judged, s.detached) == (46, 20, 25, 1)
    assert s.max_imbalance_ratio == 6.0 and s.max_imbalance_sample == 30
    assert s.ops_names == ("simple",) and s.duration_s == pytest.approx(25 * DT)
    # intervals 39->40 and 40->41 touch the detached sample: not measured
    assert s.events == {"select_cpu_fallback": 4 * 22, "dispatch_keep_last": 2 * 22}
    # 23 measured intervals, the last one (44->45) without growth
    assert s.event_rates["select_cpu_fallback"] == pytest.approx(88 / (23 * DT))
    assert s.peak_rates["dispatch_keep_last"] == pytest.approx(16.0)
    assert s.stall_intervals == 0
    assert MonitorSummary.from_dict(s.to_dict()) == s


def test_block_renders_in_the_result_and_survives_json() -> None:
    samples = series(30, frozen(2, 5, 8),
                     events=counting({"select_cpu_fallback": 1}, 1, 30))
    r = judge(samples, watchdog=WatchdogResult(12.0, 12.0))
    assert r.passed  # two still intervals: below sustained_samples
    text = str(r)
    assert text.splitlines()[0] == "--- monitor ---"
    assert "imbalance: max 2.0 (sample 5), avg 1.1; avg nr_running 1.0" in text
    assert "local DSQ depth: max 0 on cpu0 (sample 0)" in text
    assert "rq_clock stalls: 2 cpu-intervals on cpu2 (a vCPU needs 100ms" in text
    assert "events: select_cpu_fallback 29 (8.0/s, peak 8.0/s), dispatch_keep_last" not in text
    assert "events: select_cpu_fallback 29 (8.0/s, peak 8.0/s)" in text
    assert text.splitlines()[-1] == "watchdog: requested 12s, read back 12s"
    again = AssertResult.from_dict(r.to_dict())
    assert again.monitor == r.monitor and str(again) == text


def test_block_watchdog_not_read_back_and_failure_report_layout() -> None:
    r = judge(series(40, overloaded(10, 22)), watchdog=WatchdogResult(
        4.0, note="this kernel has neither scx_root->watchdog_timeout "
                  "nor scx_watchdog_timeout"))
    lines = str(r).splitlines()
    assert lines[0].startswith("  imbalance ratio 8.0 exceeded threshold 4.0")
    assert lines[1].startswith("    at sample 21: cpu0")
    assert lines[2] == "" and lines[3] == "--- monitor ---"
    assert lines[-1] == ("watchdog: requested 4s, read back - (this kernel has neither "
                         "scx_root->watchdog_timeout nor scx_watchdog_timeout)")
    assert judge([]).monitor == ["samples: none taken", "watchdog: not overridden"]


def test_merge_keeps_the_monitor_block() -> None:
    total = AssertResult()
    total.merge(judge(series(30)))
    assert total.monitor and total.monitor[0].startswith("samples: 30 taken")


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="warmup_samples=-1 is invalid"):
        judge(series(3), warmup_samples=-1)
    with pytest.raises(ConfigError, match="stall_min_vcpu_ns=-5 is invalid"):
        summarize_monitor(series(3), stall_min_vcpu_ns=-5)
