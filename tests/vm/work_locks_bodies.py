"""Guest bodies for tests/vm/test_work_locks.py: the lock, class-mismatch and
producer/consumer work types, proved from the kernel's own counters."""

import time

from ktstr import CgroupDef, Ctx, WorkloadConfig, WorkloadHandle, execute_defs, ktstr_test
from ktstr.checks import AssertResult
from ktstr.work.locks import (
    AsymmetricWaker,
    FutexLockMode,
    MutexContention,
    PriorityInversion,
    ProducerConsumerImbalance,
    SchedClass,
)
from ktstr.work.wake import CachePipe

SCHED_IDLE = 5


def _figures(result: AssertResult) -> None:
    """Print each worker's figures: the guest log keeps them for the report."""
    for r in result.reports:
        print(f"{r.work_type} tid={r.tid} iters={r.iterations} vcsw={r.voluntary_csw} "
              f"icsw={r.involuntary_csw} wake={r.wake_latency_us} metrics={r.metrics} "
              f"notes={r.notes}")


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0)
def mutex_contention_convoy(ctx: Ctx) -> AssertResult:
    work = MutexContention(contenders=4, hold_iters=2000, work_iters=200)
    result = execute_defs(ctx, [CgroupDef("mx", workers=4, work=work)])
    _figures(result)
    for r in result.reports:
        assert not r.error, r.error
        assert r.metrics["acquisitions"] == r.iterations > 0, r
    # Four contenders on two CPUs: lockers queue, sleep in FUTEX_WAIT (voluntary
    # switches, counted by the kernel) and are woken by the unlocker.
    assert sum(r.metrics["contended"] for r in result.reports) > 0
    assert sum(r.voluntary_csw for r in result.reports) > 0
    assert sum(r.wake_latency_us.count for r in result.reports) > 0
    return result


def _inversion(ctx: Ctx, mode: FutexLockMode) -> tuple[AssertResult, dict[str, dict]]:
    result = execute_defs(ctx, [CgroupDef("pi", workers=3, work=PriorityInversion(mode))])
    _figures(result)
    tiers = {("low", "mid", "high")[int(r.metrics["tier"])]: r for r in result.reports}
    assert sorted(tiers) == ["high", "low", "mid"], tiers
    for r in result.reports:
        assert not r.error, r.error
        assert r.metrics["rt"] == 1.0, f"tiers are not SCHED_FIFO here: {r.notes}"
    low, high = tiers["low"].metrics, tiers["high"].metrics
    assert low["acquisitions"] > 0 and high["acquisitions"] > 0
    assert high["contended"] > 0, "high never found the lock held"
    assert low["holds_with_waiters"] > 0, "nobody ever waited on low's lock"
    return result, {k: v.metrics for k, v in tiers.items()}


# Three SCHED_FIFO tiers on two CPUs: the gaps of the preempted ones are the point.
@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0,
            max_gap_ms=10_000.0)
def priority_inversion_pi_boosts_the_holder(ctx: Ctx) -> AssertResult:
    result, m = _inversion(ctx, FutexLockMode.PI)
    # FUTEX_LOCK_PI by high (FIFO 30) raised low's (FIFO 10) effective priority:
    # the kernel's own prio field of low, read while high waited, was below its base.
    assert m["low"]["pi_boosts_seen"] > 0, m["low"]
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0,
            max_gap_ms=10_000.0)
def priority_inversion_plain_does_not_boost(ctx: Ctx) -> AssertResult:
    result, m = _inversion(ctx, FutexLockMode.PLAIN)
    assert m["low"]["pi_boosts_seen"] == 0, m["low"]
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0)
def asymmetric_waker_crosses_classes(ctx: Ctx) -> AssertResult:
    ctx.cgroups.create("asym")
    cfg = WorkloadConfig(workers=2, work=AsymmetricWaker(slow_class=SchedClass.IDLE))
    with WorkloadHandle.spawn(cfg, cgroup_dir=ctx.cgroups.path("asym"), start=True) as h:
        time.sleep(ctx.duration / 2)
        import os
        policies = sorted(os.sched_getscheduler(pid) for pid in h.pids)  # the kernel's view
        time.sleep(ctx.duration / 2)
        reports = h.stop_and_collect()
    result = ctx.checks.assert_cgroup(reports, None, name="asym")
    _figures(result)
    assert policies == [os.SCHED_OTHER, SCHED_IDLE], policies
    normal = next(r for r in reports if r.metrics["sched_policy"] == os.SCHED_OTHER)
    idle = next(r for r in reports if r.metrics["sched_policy"] == SCHED_IDLE)
    for r in reports:
        assert not r.error and r.iterations > 0, r
    # The normal side sleeps on the futex and the idle side wakes it: its samples.
    assert normal.wake_latency_us.count > 0 and normal.voluntary_csw > 0, normal
    # The idle side either slept and was woken (samples) or was preempted by the
    # normal side it had just woken (involuntary switches): it ran across the boundary.
    assert idle.wake_latency_us.count > 0 or idle.involuntary_csw > 0, idle
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0)
def cache_pipe_records_wake_latency(ctx: Ctx) -> AssertResult:
    result = execute_defs(ctx, [CgroupDef("cp", workers=2, work=CachePipe())])
    _figures(result)
    for r in result.reports:
        assert not r.error, r.error
        lat = r.wake_latency_us
        assert lat.count > 0 and lat.p50 <= lat.p99 <= lat.max, lat
        assert r.voluntary_csw > 0 and r.metrics["burst_ns_mean"] > 0, r
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0)
def producer_consumer_queue_waits(ctx: Ctx) -> AssertResult:
    work = ProducerConsumerImbalance(producers=2, consumers=1, consume_iters=256, burst=100,
                                     pause=0.2)
    result = execute_defs(ctx, [CgroupDef("pc", workers=3, work=work)])
    _figures(result)
    prod = [r for r in result.reports if r.metrics["producer"] == 1.0]
    (cons,) = [r for r in result.reports if r.metrics["producer"] == 0.0]
    for r in result.reports:
        assert not r.error, r.error
    produced = sum(r.metrics["produced"] for r in prod)
    assert 0 < cons.metrics["consumed"] <= produced, (produced, cons.metrics)
    # Bursts fill the one-page pipe: producers sleep in pipe_write's wait until a read.
    assert sum(r.metrics["queue_full_waits"] for r in prod) > 0
    # Pauses drain it: the consumer sleeps on the empty pipe and a write wakes it.
    assert cons.metrics["queue_empty_waits"] > 0 and cons.wake_latency_us.count > 0, cons
    assert all(r.voluntary_csw > 0 for r in result.reports)
    return result
