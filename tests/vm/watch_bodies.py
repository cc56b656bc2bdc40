"""Test bodies for test_watch_snapshots.py: Op.watch_snapshot and on_error in a real guest.

Not a test module (no test_ prefix). The watched writes are the body's own (a sysctl):
the guest stands still while the host captures, so the capture is there when the
write returns.
"""

from __future__ import annotations

from pathlib import Path

from ktstr import (
    AssertResult,
    CgroupDef,
    Ctx,
    HoldSpec,
    KtstrError,
    Op,
    Scheduler,
    Step,
    execute_steps,
    ktstr_test,
    work,
)

SYMBOL = "sysctl_sched_rr_timeslice"
RR = Path("/proc/sys/kernel/sched_rr_timeslice_ms")
QMAP = Scheduler("scx_qmap")
#: qmap's error countdown, the counter `scx_qmap -e N` sets at load: written by the host
#: once qmap is attached (and its exit watched), it makes qmap call scx_bpf_error() after
#: that many more enqueues, early in the body. (-e itself counts from the load, racing
#: the watch set's arming: test_watch.py proves -e at the mechanism level.)
ERROR_AFTER = 200


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2)
def watch_a_sysctl(ctx: Ctx) -> AssertResult:
    out = execute_steps(ctx, [Step(ops=[Op.watch_snapshot(SYMBOL)],
                                   setup=[CgroupDef("spin", work=work.SpinWait())],
                                   hold=HoldSpec.fixed(0.5))])
    before = int(RR.read_text())
    for ms in (before + 5, before + 6):
        RR.write_text(f"{ms}\n")
    snap = ctx.snapshots[SYMBOL]
    w = snap.watch or {}
    if snap.hits != 2:
        out.add_failure(f"{SYMBOL}: {snap.hits} hits for two writes")
    if w.get("value") != before + 6:
        out.add_failure(f"{SYMBOL}: the latest capture saw {w.get('value')}, the body wrote "
                        f"{before + 6}")
    if sorted(snap.cpus()) != sorted(ctx.topo.all_cpus):
        out.add_failure(f"{SYMBOL}: runqueues of cpus {snap.cpus()}")
    try:
        execute_steps(ctx, [Step(ops=[Op.watch_snapshot("sysctl_sched_rr_timeslice_ms")],
                                 hold=HoldSpec.fixed(0.1))])
        out.add_failure("watching a symbol the kernel lacks did not fail")
    except KtstrError as e:
        if SYMBOL not in str(e):  # the near match is named
            out.add_failure(f"unknown symbol: {e}")
    return out


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=8, scheduler=QMAP,
            scheduler_vars={"qa.test_error_cnt": ERROR_AFTER})
def qmap_error_exit(ctx: Ctx) -> AssertResult:
    return execute_steps(ctx, [Step(setup=[CgroupDef("load", work=work.FutexPingPong(),
                                                    workers=4)],
                                    hold=HoldSpec.frac(1.0))])
