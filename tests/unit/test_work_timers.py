"""Timer, IRQ, signal and RT work types: defaults, validation, grouping, the periodic
deadline arithmetic, the FIFO election, and short real runs on the host."""

from __future__ import annotations

import os
import time

import pytest
from procs import run_workers

from ktstr.errors import ConfigError
from ktstr.work import WorkType
from ktstr.work.rt import (
    Election,
    PreemptStorm,
    RtStarvation,
    has_fair_server,
    read_policy,
    rt_throttle,
)
from ktstr.work.timers import (
    TIMER_LATENCY_INTERVAL_US,
    IrqWake,
    NetTraffic,
    Periodic,
    SignalStorm,
    TimerLatency,
)
from ktstr.workload import WorkloadConfig

ROOT = os.geteuid() == 0


def test_timer_latency_defaults_to_cyclictests_interval() -> None:
    assert TimerLatency().interval_us == TIMER_LATENCY_INTERVAL_US == 1000
    assert WorkType.from_name("TimerLatency") == TimerLatency(1000)
    assert TimerLatency(interval_us=250).interval_us == 250


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "1000"])
def test_timer_latency_refuses_a_bad_interval(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"TimerLatency interval_us = .* positive integer"):
        TimerLatency(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["TimerLatency", "IrqWake", "NetTraffic", "SignalStorm",
                                  "PreemptStorm", "RtStarvation"])
def test_every_type_is_built_by_name(name: str) -> None:
    assert name in WorkType.ALL_NAMES
    assert WorkType.from_name(name).name == name


def test_group_sizes() -> None:
    assert IrqWake().group_size == SignalStorm().group_size == RtStarvation().group_size == 2
    assert TimerLatency().group_size is None
    assert NetTraffic().group_size is None
    assert PreemptStorm().group_size is None


@pytest.mark.parametrize("work", [IrqWake, SignalStorm, RtStarvation])
def test_paired_types_refuse_an_odd_worker_count(work: type[WorkType]) -> None:
    with pytest.raises(ConfigError, match="multiple of 2"):
        WorkloadConfig(workers=3, work=work())


def test_periodic_waits_until_the_absolute_deadline() -> None:
    timer = Periodic(20_000_000)
    first = timer.target
    now, late = timer.wait()
    assert now >= first and late == now - first >= 0
    assert timer.target == first + 20_000_000 and timer.overruns == 0


def test_periodic_skips_missed_periods_instead_of_bursting() -> None:
    interval = 100_000_000
    timer = Periodic(interval)
    start = time.monotonic_ns()
    timer.target = start - int(5.5 * interval)  # 5.5 periods late already
    now, late = timer.wait()
    assert late >= int(5.5 * interval)
    assert timer.overruns == 5
    assert now < timer.target <= now + interval


def test_election_first_claim_wins_per_key_and_release_reopens() -> None:
    e = Election()
    assert e.claim(7)
    assert not e.claim(7)
    assert e.claim(8)
    e.release(7)
    assert e.claim(7)


def test_election_is_shared_with_forked_workers() -> None:
    e = Election()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0 if e.claim(42) else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert not e.claim(42)  # the child holds it


def test_read_policy_and_rt_throttle_come_from_the_kernel() -> None:
    assert read_policy() == os.sched_getscheduler(0)
    runtime, period = rt_throttle()
    with open("/proc/sys/kernel/sched_rt_runtime_us") as f:
        assert runtime == int(f.read())
    assert period > 0


@pytest.mark.parametrize(("release", "expected"), [
    ("6.11.0-1-amd64", False), ("6.12.3", True), ("7.2.13+deb14-amd64", True),
    ("5.15.0", False)])
def test_fair_server_from_the_kernel_release(monkeypatch: pytest.MonkeyPatch, release: str,
                                             expected: bool) -> None:
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, release, real.version, real.machine))
    monkeypatch.setattr(os, "uname", lambda: fake)
    monkeypatch.setattr(os.path, "isdir", lambda p: False)
    assert has_fair_server() is expected


def test_timer_latency_samples_every_wake_at_the_intervals_rate() -> None:
    (r,) = run_workers(TimerLatency(2000), 1)
    wakes, overruns = r.metrics["wakes"], r.metrics["overruns"]
    assert r.wake_latency_us.count == wakes == r.work_units > 0
    assert r.metrics["timer_slack_ns"] >= 0
    periods = r.wall_time_ns / 2_000_000
    assert 0.7 * periods <= wakes + overruns <= periods + 2, (wakes, overruns, periods)


def test_irq_wake_both_sides_are_woken_by_datagrams() -> None:
    for r in run_workers(IrqWake(), 2):
        assert r.wake_latency_us.count > 0, r
        assert r.metrics["datagrams_received"] == r.wake_latency_us.count
        assert r.voluntary_csw > 0


def test_net_traffic_gets_its_own_frames_back() -> None:
    (r,) = run_workers(NetTraffic(), 1)
    assert r.metrics["frames_received"] > 0 and r.wake_latency_us.count > 0
    assert r.metrics["frames_sent"] >= r.metrics["frames_received"]
    assert any("NET_RX softirq" in n for n in r.notes), r.notes


def test_signal_storm_signals_arrive_at_the_partner() -> None:
    a, b = run_workers(SignalStorm(), 2)
    for me, other in ((a, b), (b, a)):
        assert me.metrics["signals_sent"] > 0
        # Standard signals coalesce while pending: at most what the partner sent arrives.
        assert 0 < me.metrics["signals_received"] <= other.metrics["signals_sent"]


def test_preempt_storm_elects_exactly_one_preemptor() -> None:
    reports = run_workers(PreemptStorm(), 3)
    (fifo,) = [r for r in reports if r.metrics["preemptor"] == 1.0]
    assert fifo.metrics["wakes"] > 0 and fifo.wake_latency_us.count > 0
    if ROOT:
        assert fifo.metrics["sched_policy"] == os.SCHED_FIFO
    for r in reports:
        if r is not fifo:
            assert r.metrics["sched_policy"] == os.SCHED_OTHER


def test_rt_starvation_pairs_one_fifo_hog_with_one_cfs_spinner() -> None:
    reports = run_workers(RtStarvation(), 2)
    hogs = [r for r in reports if r.metrics["rt_hog"] == 1.0]
    assert len(hogs) == 1
    assert hogs[0].metrics["sched_policy"] == (os.SCHED_FIFO if ROOT else os.SCHED_OTHER)
    assert all(r.metrics["rt_runtime_us"] == rt_throttle()[0] for r in reports)
