"""Guest bodies for the group wake types, run by test_work_fanout.py through the runner.

Not a test module (no test_ prefix): pytest must not collect these on their own,
since one of them must fail. Each body checks its workers from the kernel's side
(voluntary context switches from /proc, the wake samples the wakers stamped) and
returns the result the runner judges with the body's thresholds. Off-CPU spread is
not what these bodies test (a messenger and its receivers are busy for different
shares of the time), so the spread threshold is opened wide.
"""

from ktstr import CgroupDef, Ctx, execute_defs, ktstr_test
from ktstr.checks import AssertResult
from ktstr.work.chain import WakeChain, WakeMechanism
from ktstr.work.fanout import EpollStorm, FanOutCompute, FutexFanOut, ThunderingHerd
from ktstr.work.report import WorkerReport

#: A generous p99 gate: 5 s. Emulated guests on a loaded host still pass it.
GENEROUS_P99_US = 5_000_000.0


def _by_type(result: AssertResult, name: str) -> list[WorkerReport]:
    found = [r for r in result.reports if r.work_type == name]
    assert found, f"no {name} reports in {[r.work_type for r in result.reports]}"
    return found


def _woken_for_real(reports: list[WorkerReport], wakees: int) -> None:
    """`wakees` of `reports` recorded plausible wake samples, each one a real sleep."""
    woken = [r for r in reports if r.wake_latency_us.count > 0]
    assert len(woken) == wakees, [(r.metrics, r.wake_latency_us) for r in reports]
    for r in woken:
        lat = r.wake_latency_us
        assert 0 < lat.p50 <= lat.p99 <= lat.max < 60e6, lat
        # A sample ends a voluntary sleep, so the kernel counted about as many switches
        # (a wake that lands between queueing and schedule() is sampled without one).
        assert r.voluntary_csw >= lat.count // 2, (r.voluntary_csw, lat)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0,
            max_p99_wake_latency_us=GENEROUS_P99_US)
def fan_out_types(ctx: Ctx) -> AssertResult:
    result = execute_defs(ctx, [
        CgroupDef("fanout", workers=5, work=FutexFanOut(4, 256)),
        CgroupDef("compute", workers=3, work=FanOutCompute(fan_out=2, matrix_dim=8)),
    ])
    for name, receivers in (("FutexFanOut", 4), ("FanOutCompute", 2)):
        reports = _by_type(result, name)
        _woken_for_real(reports, receivers)
        messenger = [r for r in reports if r.metrics["group_role"] == 0]
        assert len(messenger) == 1 and messenger[0].wake_latency_us.count == 0
        rounds = messenger[0].iterations
        assert rounds >= 3, rounds
        for r in reports:  # lock-step rounds: every receiver woke for each one
            assert rounds - 1 <= r.iterations <= rounds, (rounds, r.iterations)
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0,
            max_p99_wake_latency_us=GENEROUS_P99_US)
def herd_and_epoll(ctx: Ctx) -> AssertResult:
    result = execute_defs(ctx, [
        CgroupDef("herd", workers=5, work=ThunderingHerd(4, 100_000, 2)),
        CgroupDef("epoll", workers=4, work=EpollStorm(1, 3, 8)),
    ])
    herd = _by_type(result, "ThunderingHerd")
    _woken_for_real(herd, 4)
    (waker,) = [r for r in herd if r.metrics["group_role"] == 0]
    assert waker.iterations >= 3
    for r in herd:  # one broadcast wakes the whole herd: each waiter saw every batch
        assert waker.iterations - 1 <= r.iterations <= waker.iterations
    epoll = _by_type(result, "EpollStorm")
    (producer,) = [r for r in epoll if r.metrics["group_role"] == 0]
    consumers = [r for r in epoll if r.metrics["group_role"] != 0]
    written = producer.metrics["events_written"]
    taken = sum(r.metrics["events_taken"] for r in consumers)
    empty = sum(r.metrics["empty_wakeups"] for r in consumers)
    assert written >= 16 and written - 8 <= taken <= written, (written, taken)
    # EPOLLEXCLUSIVE: an event wakes one consumer, so wakeups that found nothing
    # stay well below the events (a broadcast would wake all three per event).
    assert empty < taken, (empty, taken)
    assert sum(r.wake_latency_us.count for r in consumers) > 0
    assert sum(r.voluntary_csw for r in consumers) > 0
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0,
            max_p99_wake_latency_us=GENEROUS_P99_US)
def wake_chains(ctx: Ctx) -> AssertResult:
    result = execute_defs(ctx, [
        CgroupDef("pipe", workers=3, work=WakeChain(3, WakeMechanism.PIPE, 0.0005)),
        CgroupDef("futex", workers=3, work=WakeChain(3, WakeMechanism.FUTEX, 0.0005)),
    ])
    chains = _by_type(result, "WakeChain")
    assert len(chains) == 6
    for cg in {r.cgroup for r in chains}:
        ring = [r for r in chains if r.cgroup == cg]
        _woken_for_real(ring, 3)
        hops = [r.iterations for r in ring]
        assert min(hops) >= 5 and max(hops) - min(hops) <= 1, (cg, hops)  # one token
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2, max_spread_pct=100.0,
            max_p99_wake_latency_us=0.001)
def fan_out_p99_gate_fails(ctx: Ctx) -> AssertResult:
    """No wakeup takes under a nanosecond: this threshold must fail the run."""
    return execute_defs(ctx, [CgroupDef("fanout", workers=3, work=FutexFanOut(2, 256))])
