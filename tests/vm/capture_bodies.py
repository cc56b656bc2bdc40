"""Test bodies for test_snapshot_capture.py: Op.snapshot and ctx.snapshots in a real guest.

Not a test module (no test_ prefix). The checks run in the guest, on what the host
captured and sent back; each failed one is a detail line of a failing result.
"""

from __future__ import annotations

from ktstr import (
    AssertResult,
    Ctx,
    HoldSpec,
    KtstrError,
    Op,
    Scheduler,
    Snapshot,
    Step,
    execute_steps,
    ktstr_test,
    work,
)

QMAP = Scheduler("scx_qmap")
#: Written by the host into qmap's arena counter before the body: qmap counts on from it.
BIG = 10**12
RQ_FIELDS = {"nr_running", "clock_ns", "scx_nr_running", "local_dsq_depth", "curr_pid",
             "curr_comm"}


def _steps(cpus: int) -> list[Step]:
    """A spinner per CPU (every rq clock keeps moving), "a" at once, "b" a second later."""
    return [Step([Op.add_cgroup("spin"), Op.spawn("spin", work.SpinWait(), cpus),
                  Op.snapshot("a")], hold=HoldSpec.fixed(1.0)),
            Step([Op.snapshot("b")], hold=HoldSpec.fixed(0.5))]


def _check_pair(ctx: Ctx, out: AssertResult) -> tuple[Snapshot, Snapshot] | None:
    try:
        a, b = ctx.snapshots["a"], ctx.snapshots["b"]
    except KtstrError as e:
        out.add_failure(f"ctx.snapshots: {e}")
        return None
    cpus = sorted(ctx.topo.all_cpus)
    for snap in (a, b):
        if not snap.frozen_ms > 0:
            out.add_failure(f"{snap.name}: frozen_ms={snap.frozen_ms}")
        if snap.hits != 1:
            out.add_failure(f"{snap.name}: hits={snap.hits}")
        if snap.cpus() != cpus:
            out.add_failure(f"{snap.name}: runqueues of cpus {snap.cpus()}, expected {cpus}")
        for cpu in cpus:
            missing = RQ_FIELDS - set(snap.rq(cpu))
            if missing:
                out.add_failure(f"{snap.name}: rq({cpu}) lacks {sorted(missing)}")
    for cpu in cpus:
        ca, cb = a.rq(cpu)["clock_ns"], b.rq(cpu)["clock_ns"]
        if not cb > ca:
            out.add_failure(f"cpu{cpu}: rq clock {cb} in b is not later than {ca} in a")
    try:
        ctx.snapshots["nope"]
        out.add_failure("ctx.snapshots['nope'] did not raise")
    except KeyError as e:
        if "'a'" not in str(e) or "'b'" not in str(e):
            out.add_failure(f"unknown-name error does not list a and b: {e}")
    if sorted(ctx.snapshots) != ["a", "b"] or "a" not in ctx.snapshots:
        out.add_failure(f"ctx.snapshots lists {sorted(ctx.snapshots)}")
    return a, b


def _check_qmap_state(a: Snapshot, b: Snapshot, out: AssertResult) -> None:
    """qmap's own counters (globals in its arena, `qa`) grow from a to b, the value the
    host wrote before the body is what qmap counted on from, and a map's values carry
    their BTF field names."""
    try:
        for counter in ("qa.nr_enqueued", "qa.nr_dispatched"):
            if not b.var(counter) > a.var(counter) > 0:
                out.add_failure(f"{counter}: a={a.var(counter)} b={b.var(counter)}")
        if not a.var("qa.nr_dispatched") >= BIG:
            out.add_failure(f"qa.nr_dispatched={a.var('qa.nr_dispatched')} in a: the "
                            f"{BIG} written before the body was not counted on from")
        timer = a.map("monitor_timer")
        if len(timer) != 1 or not isinstance(timer.at(0).value, dict) \
                or "timer" not in timer.at(0).value:
            out.add_failure(f"monitor_timer: {[e.value for e in timer]}")
        if "scx_qmap.bss" not in a.maps():
            out.add_failure(f"maps: {a.maps()}")
    except KtstrError as e:
        out.add_failure(f"qmap state: {e}")


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2, scheduler=QMAP,
            scheduler_vars={"qa.nr_dispatched": BIG})
def two_snapshots_under_qmap(ctx: Ctx) -> AssertResult:
    result = execute_steps(ctx, _steps(len(ctx.topo.all_cpus)))
    out = AssertResult.ok()
    pair = _check_pair(ctx, out)
    if pair is not None:
        a, b = pair
        for snap in (a, b):
            scx = snap.scx
            if not scx.get("attached") or scx.get("ops_name") != "qmap":
                out.add_failure(f"{snap.name}: scx {scx}")
            if scx.get("enable_state") != "SCX_ENABLED":
                out.add_failure(f"{snap.name}: enable state {scx.get('enable_state')}")
            if not any(snap.rq(c)["scx_nr_running"] >= 1 for c in snap.cpus()):
                out.add_failure(f"{snap.name}: no task on any sched_ext runqueue")
            if snap.scheduler != "qmap" or snap.missing:
                out.add_failure(f"{snap.name}: scheduler {snap.scheduler}, missing "
                                f"{snap.missing}")
        _check_qmap_state(a, b, out)
        out.details.append(f"frozen_ms a={a.frozen_ms:.2f} b={b.frozen_ms:.2f}")
    result.merge(out)
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2)
def snapshots_under_eevdf(ctx: Ctx) -> AssertResult:
    """No sched_ext scheduler (and, from the test, no monitor): the rq part is still
    there and the capture says what it lacks."""
    result = execute_steps(ctx, _steps(len(ctx.topo.all_cpus)))
    out = AssertResult.ok()
    pair = _check_pair(ctx, out)
    if pair is not None:
        a, _ = pair
        if a.scx.get("attached"):
            out.add_failure(f"a: scx {a.scx} under EEVDF")
        if not any("no sched_ext scheduler" in m for m in a.missing):
            out.add_failure(f"a: missing {a.missing}")
        try:
            a.var("nr_enqueued")
            out.add_failure("a.var() did not raise under EEVDF")
        except KtstrError as e:
            if "no sched_ext scheduler" not in str(e):
                out.add_failure(f"a.var(): {e}")
    result.merge(out)
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, scheduler=QMAP,
            scheduler_vars={"no_such_var": 1})
def unknown_scheduler_var(ctx: Ctx) -> AssertResult:
    """Never runs: the host cannot write a global qmap does not have."""
    return AssertResult.fail("the body ran although its scheduler_vars could not be written")
