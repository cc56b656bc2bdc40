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
        # The gap is recorded at the worker's first checkpoint after the thaw: let it run
        # before stopping it (stopped at once, it could die before that checkpoint).
        Step(ops=(Op.unfreeze_cgroup("a"),), hold=HoldSpec.fixed(0.5)),
        Step(ops=(Op.stop_cgroup("a"),), hold=HoldSpec.fixed(0.1)),
    ])
    (report,) = result.reports
    assert report.cpus_used == {1}, f"ran on {sorted(report.cpus_used)}, cpuset was 1"
    assert report.max_gap_ms >= 800, f"a 1 s freeze left only a {report.max_gap_ms} ms gap"
    assert report.step == 4
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2)
def futex_ping_pong_records_wake_latency(ctx: Ctx) -> AssertResult:
    result = execute_defs(ctx, [CgroupDef("pp", workers=2, work=work.FutexPingPong())])
    for r in result.reports:
        lat = r.wake_latency_us
        assert lat.count > 0 and lat.p50 <= lat.p99 <= lat.max, lat
        assert r.voluntary_csw > 0
    return result


@ktstr_test(llcs=2, cores=2, threads=1, duration_s=3)
def ops_swap_move_capture(ctx: Ctx) -> AssertResult:
    caps: dict[str, list[int]] = {}
    result = execute_steps(ctx, [
        Step(ops=(Op.add_cgroup("a"), Op.add_cgroup("b"),
                  Op.set_cpuset("a", CpusetSpec.llc(0)), Op.set_cpuset("b", CpusetSpec.llc(1)),
                  Op.spawn("a", work.SpinWait(), 2), Op.spawn("b", work.SpinWait(), 1),
                  Op.capture_cgroup_procs("a_before", "a")), hold=HoldSpec.fixed(1.0)),
        Step(ops=(Op.swap_cpusets("a", "b"),), hold=HoldSpec.fixed(1.0)),
        Step(ops=(Op.move_all_tasks("a", "b"), Op.capture_cgroup_procs("a_after", "a"),
                  Op.capture_cgroup_procs("b_after", "b")), hold=HoldSpec.fixed(0.2)),
    ], captures=caps)
    a_pids = set(caps["a_before"])
    assert len(a_pids) == 2, caps
    assert caps["a_after"] == [], caps  # moved out: the kernel lists nobody left in a
    assert a_pids <= set(caps["b_after"]), caps
    # a's workers ran on LLC 0 and, after the swap, on LLC 1: the cpusets really moved.
    for r in result.reports:
        if r.tid in a_pids:
            assert r.cpus_used & {0, 1} and r.cpus_used & {2, 3}, (r.tid, r.cpus_used)
    return result
