"""Steps/ops and a wake-based work type, proved inside a guest with real cpusets."""

from ktstr import (
    CgroupDef,
    CpusetSpec,
    Ctx,
    HoldSpec,
    Op,
    Step,
    execute_defs,
    execute_steps,
    ktstr_test,
    work,
)
from ktstr.checks import AssertResult


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def ops_pin_then_freeze(ctx: Ctx) -> AssertResult:
    result = execute_steps(ctx, [
        Step(ops=(Op.add_cgroup("a"), Op.set_cpuset("a", CpusetSpec.exact({1})),
                  Op.spawn("a", work.SpinWait(), 1)), hold=HoldSpec.fixed(1.0)),
        Step(ops=(Op.freeze_cgroup("a"),), hold=HoldSpec.fixed(1.0)),
        Step(ops=(Op.unfreeze_cgroup("a"), Op.stop_cgroup("a")), hold=HoldSpec.fixed(0.1)),
    ])
    (report,) = result.reports
    assert report.cpus_used == {1}, f"ran on {sorted(report.cpus_used)}, cpuset was 1"
    assert report.max_gap_ms >= 800, f"a 1 s freeze left only a {report.max_gap_ms} ms gap"
    assert report.step == 3
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2)
def futex_ping_pong_records_wake_latency(ctx: Ctx) -> AssertResult:
    result = execute_defs(ctx, [CgroupDef("pp", workers=2, work=work.FutexPingPong())])
    for r in result.reports:
        lat = r.wake_latency_us
        assert lat.count > 0 and lat.p50 <= lat.p99 <= lat.max, lat
        assert r.voluntary_csw > 0
    return result
