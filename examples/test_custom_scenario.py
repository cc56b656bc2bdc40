"""Seed 000's custom scenario: shrink one cgroup's cpuset mid-run, then prove the
workers followed it (they migrated, and every one of them ended up on LLC 1).
"""

import time

from ktstr import Ctx, collect_all, dfl_wl, ktstr_test, setup_cgroups
from ktstr.checks import AssertResult


@ktstr_test(llcs=2, cores=2, threads=1, duration_s=6)
def workers_follow_cpuset_shrink(ctx: Ctx) -> AssertResult:
    wl = dfl_wl(ctx)
    with setup_cgroups(ctx, 2, wl) as handles:  # cg_0, cg_1; removed on exit
        time.sleep(ctx.duration / 2)
        ctx.cgroups.set_cpuset("cg_0", ctx.topo.llc_aligned_cpuset(1))
        time.sleep(ctx.duration / 2)
        cg0 = handles[0].stop_and_collect()
        assert sum(r.migration_count for r in cg0) > 0, "cpuset shrink forced no migrations"
        result = ctx.checks.assert_cgroup(cg0, None)
        result.merge(collect_all(handles[1:], ctx.checks))
        return result
