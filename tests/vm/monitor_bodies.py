"""Test bodies judged by the host-side monitor, for test_monitor.py (not collected)."""

from __future__ import annotations

import time

from ktstr import (
    AssertResult,
    CgroupDef,
    Ctx,
    Scheduler,
    dfl_wl,
    execute_defs,
    ktstr_test,
    setup_cgroups,
    work,
)

SIMPLE = Scheduler("scx_simple")
QMAP_STALL = Scheduler("scx_qmap", sched_args=("-t", "2"))


@ktstr_test(llcs=1, cores=4, threads=1, duration_s=6, scheduler=SIMPLE, not_starved=False,
            max_spread_pct=100.0, max_gap_ms=60000)
def eight_spinners_on_cpu0(ctx: Ctx) -> AssertResult:
    """Eight spinners pinned to cpu0 of four: cpu0's runqueue holds 8, the others ~0.
    The guest's own checks are switched off: only the monitor can fail this."""
    return execute_defs(ctx, [CgroupDef("pinned", workers=8, work=work.SpinWait(),
                                        affinity=frozenset({0}))])


@ktstr_test(llcs=1, cores=4, threads=1, duration_s=5, scheduler=SIMPLE, watchdog_timeout_s=9)
def balanced_under_simple(ctx: Ctx) -> AssertResult:
    """Four spinners on four CPUs, free to move: no monitor check should fire."""
    return execute_defs(ctx, [CgroupDef("spread", workers=4, work=work.SpinWait())])


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=12, watchdog_timeout_s=12,
            scheduler=QMAP_STALL, timeout_s=300)
def qmap_stall_under_a_12s_watchdog(ctx: Ctx) -> None:
    """scx_qmap -t 2 never runs every second user thread; its own ops.timeout_ms is 5 s,
    the host writes 12 s into scx_root->watchdog_timeout. The body outwaits both: the
    scheduler's death interrupts it."""
    with setup_cgroups(ctx, 1, dfl_wl(ctx)):
        time.sleep(60)
