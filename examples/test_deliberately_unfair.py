"""A test that must fail: four spinners in one cgroup, three of them pinned to
cpu0 and one to cpu1. Under EEVDF the three share cpu0 (about 67 % off-CPU each)
while the fourth has cpu1 to itself (about 0 %), so the fairness check reports
its `unfair cgroup:` line. Marked xfail(strict): the demo shows the
failure report, and it would be an error if this ever passed.
"""

import os

import pytest

from ktstr import CgroupDef, Ctx, WorkerReport, execute_defs, ktstr_test, work
from ktstr.checks import AssertResult


def crowd_onto_cpu0(wctx: work.WorkerCtx) -> WorkerReport:
    os.sched_setaffinity(0, {0} if wctx.index < 3 else {1})
    units = 0
    while not wctx.stop.is_set():
        for _ in range(2000):
            pass
        units += 1
    # Pinned to one CPU, so the CPU it may use is the CPU it used.
    return WorkerReport(work_units=units, iterations=units,
                        cpus_used=frozenset(os.sched_getaffinity(0)))


@pytest.mark.xfail(strict=True, reason="deliberately unfair: shows a failure report")
@ktstr_test(llcs=1, cores=2, threads=1, duration_s=4, max_spread_pct=15.0)
def three_on_one_cpu(ctx: Ctx) -> AssertResult:
    return execute_defs(ctx, [
        CgroupDef("crowded", workers=4, work=work.Custom("crowd_onto_cpu0", crowd_onto_cpu0)),
    ])
