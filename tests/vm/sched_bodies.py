"""Test bodies under real sched_ext schedulers, for test_schedulers.py (not collected).

The schedulers are the kernel's own examples, built by `ktstr sched build` (part
of `make test`'s set-up) and discovered in the kernel's cache.
"""

import os
import signal
import time

from ktstr import CgroupDef, Ctx, Scheduler, execute_defs, ktstr_test, work
from ktstr.checks import AssertResult

SIMPLE = Scheduler("scx_simple")
CENTRAL = Scheduler("scx_central")
FLATCG = Scheduler("scx_flatcg")
QMAP = Scheduler("scx_qmap")
MISSING = Scheduler("scx_does_not_exist")
TUNED = Scheduler("scx_simple", sysctls={"kernel.sched_rt_runtime_us": "900000"},
                  kargs=("ktstr_test_karg=1",))


def _fair(ctx: Ctx) -> AssertResult:
    assert ctx.sched_pid is not None and os.path.exists(f"/proc/{ctx.sched_pid}")
    return execute_defs(ctx, [CgroupDef("a", workers=2), CgroupDef("b", workers=2)])


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, scheduler=SIMPLE)
def fair_under_simple(ctx: Ctx) -> AssertResult:
    return _fair(ctx)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, scheduler=CENTRAL)
def fair_under_central(ctx: Ctx) -> AssertResult:
    return _fair(ctx)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, scheduler=FLATCG)
def fair_under_flatcg(ctx: Ctx) -> AssertResult:
    return _fair(ctx)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, scheduler=QMAP)
def fair_under_qmap(ctx: Ctx) -> AssertResult:
    return _fair(ctx)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, scheduler=MISSING)
def missing_scheduler(ctx: Ctx) -> None:
    raise AssertionError("never runs: the scheduler is not found before the boot")


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2, scheduler=SIMPLE, timeout_s=240)
def scheduler_killed_mid_run(ctx: Ctx) -> None:
    assert ctx.sched_pid is not None
    time.sleep(0.5)
    os.kill(ctx.sched_pid, signal.SIGKILL)
    time.sleep(200)  # the dead scheduler must interrupt this, long before the deadline


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, scheduler=TUNED)
def sysctls_and_kargs_applied(ctx: Ctx) -> AssertResult:
    with open("/proc/sys/kernel/sched_rt_runtime_us") as f:
        assert f.read().strip() == "900000"
    with open("/proc/cmdline") as f:
        assert "ktstr_test_karg=1" in f.read().split()
    return AssertResult.ok()


# scx_qmap's own failure switches: -e N calls scx_bpf_error() after N enqueues, -t N
# stalls every Nth user thread (its ops.timeout_ms is 5 s, so the watchdog fires soon).
QMAP_ERROR = Scheduler("scx_qmap", sched_args=("-e", "2000"))
QMAP_STALL = Scheduler("scx_qmap", sched_args=("-t", "2"))


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=30, scheduler=QMAP_ERROR)
def qmap_forced_error(ctx: Ctx) -> AssertResult:
    return execute_defs(ctx, [CgroupDef("a", workers=2, work=work.YieldHeavy())])


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=30, scheduler=QMAP_STALL)
def qmap_stalled_tasks(ctx: Ctx) -> AssertResult:
    return execute_defs(ctx, [CgroupDef("a", workers=4)])
