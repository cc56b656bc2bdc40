"""Test bodies for test_work_schbench.py: Schbench and Taobench inside a guest.

Not a test module (no test_ prefix). Each body asserts presence and direction
of effects, never tight figures: other VM tests share the host's two cores.
"""

from ktstr import CgroupDef, Ctx, execute_defs, ktstr_test
from ktstr.checks import AssertResult
from ktstr.work.schbench import Schbench, SchbenchConfig
from ktstr.work.taobench import Taobench, TaobenchConfig


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def schbench_default_mode(ctx: Ctx) -> AssertResult:
    cfg = SchbenchConfig(cache_footprint_kb=4, operations=1, sleep_usec=1000)
    result = execute_defs(ctx, [CgroupDef("sb", workers=1, work=Schbench(cfg))])
    (r,) = result.reports
    m = r.metrics
    assert not r.error, r.error
    assert m["worker_threads"] == 2, m  # -t defaults to the cgroup's 2 CPUs
    assert m["requests"] > 0 and m["rps"] > 0, m
    assert m["wakeup_latency_pct50.0"] <= m["wakeup_latency_pct99.0"] <= m["wakeup_latency_max"]
    assert m["request_latency_pct50.0"] <= m["request_latency_pct99.0"], m
    assert m["request_latency_min"] >= 1000, m  # the 1 ms think sleep is in every request
    # The kernel's side: every wakeup was a futex sleep of a schbench thread.
    assert m["thread_voluntary_csw"] >= r.wake_latency_us.count > 0, (m, r.wake_latency_us)
    assert r.wake_latency_us.p50 <= r.wake_latency_us.p99
    assert m["sched_delay_worker_us"] >= 0
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def schbench_own_defaults(ctx: Ctx) -> AssertResult:
    """schbench's own defaults (-F 256, -n 5, -s 100) at a usable rate: the guest loads
    the C multiply built on the host."""
    result = execute_defs(ctx, [CgroupDef("sb", workers=1, work=Schbench())])
    (r,) = result.reports
    m = r.metrics
    assert not r.error, r.error
    assert not r.notes, r.notes  # no "ktstr._native is not built" note
    assert m["native_math"] == 1 and m["matrix_size"] == 104, m
    # Python managed ~0.2 requests/s per thread here; C about 10 (bench/schbench_math.py)
    assert m["requests"] >= 6, m
    assert 100 <= m["request_latency_pct50.0"] <= m["request_latency_pct99.0"], m
    # The kernel's side: every served request followed a futex sleep.
    assert m["thread_voluntary_csw"] >= r.wake_latency_us.count > 0, (m, r.wake_latency_us)
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def schbench_rps_mode(ctx: Ctx) -> AssertResult:
    cfg = SchbenchConfig(cache_footprint_kb=4, operations=1, rps=20)
    result = execute_defs(ctx, [CgroupDef("sb", workers=1, work=Schbench(cfg))])
    (r,) = result.reports
    m = r.metrics
    assert 0 < m["requests"] <= 20 * 5, m  # paced: at most one batch per started second
    assert m["requests_per_sec_target"] == 20, m
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def taobench_mix(ctx: Ctx) -> AssertResult:
    cfg = TaobenchConfig(keys=2000, cache_items=200, miss_latency_us=500)
    result = execute_defs(ctx, [CgroupDef("tao", workers=1, work=Taobench(cfg))])
    (r,) = result.reports
    m = r.metrics
    assert not r.error, r.error
    assert m["total_qps"] > 0 and m["slow_qps"] > 0 and m["fast_qps"] > 0, m
    assert 0 < m["hit_rate"] < 1, m
    assert m["set_qps"] < m["get_qps"], m  # 90 % gets
    assert m["miss_latency_p50_us"] >= 500, m  # a miss waits for the backing store
    assert m["latency_p50_us"] <= m["latency_p99_us"] <= m["latency_max_us"], m
    assert r.wake_latency_us.count > 0 and r.voluntary_csw >= 0
    return result
