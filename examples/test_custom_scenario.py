"""Custom scenarios: a test body that keeps control of the run.

`workers_follow_cpuset_move` moves one cgroup's cpuset mid-run from LLC 0 to
LLC 1, then proves the workers followed it: they migrated, and while still
running every one of them sat on an LLC-1 CPU, as the kernel itself reports
(/proc/<pid>/stat, field 39). `workers_follow_cpuset_shrink` is the public API's
worked custom scenario, spelled exactly as documented: cg_0 starts on every CPU and is
shrunk to LLC 1 halfway through.
"""

import time

from ktstr import Ctx, collect_all, dfl_wl, ktstr_test, setup_cgroups
from ktstr.checks import AssertResult


def last_cpu(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[36])


@ktstr_test(llcs=2, cores=2, threads=1, duration_s=6)
def workers_follow_cpuset_move(ctx: Ctx) -> AssertResult:
    wl = dfl_wl(ctx)
    llc0, llc1 = ctx.topo.llc_aligned_cpuset(0), ctx.topo.llc_aligned_cpuset(1)
    with setup_cgroups(ctx, 2, wl) as handles:  # cg_0, cg_1; removed on exit
        ctx.cgroups.set_cpuset("cg_0", llc0)
        time.sleep(ctx.duration / 2)
        ctx.cgroups.set_cpuset("cg_0", llc1)
        time.sleep(ctx.duration / 2)
        where = {pid: last_cpu(pid) for pid in handles[0].pids}
        assert set(where.values()) <= llc1, f"cg_0 workers still outside LLC 1: {where}"
        cg0 = handles[0].stop_and_collect()
        assert sum(r.migration_count for r in cg0) > 0, "cpuset move forced no migrations"
        result = ctx.checks.assert_cgroup(cg0, None)
        result.merge(collect_all(handles[1:], ctx.checks))
        return result


@ktstr_test(llcs=2, cores=4, threads=1, duration_s=10)
def workers_follow_cpuset_shrink(ctx):
    """The worked custom scenario of the public API, as its documentation spells it."""
    wl = dfl_wl(ctx)
    with setup_cgroups(ctx, 2, wl) as handles:        # cg_0, cg_1; removed on exit
        time.sleep(ctx.duration / 2)
        ctx.cgroups.set_cpuset("cg_0", ctx.topo.llc_aligned_cpuset(1))
        time.sleep(ctx.duration / 2)
        cg0 = handles[0].stop_and_collect()
        assert sum(r.migration_count for r in cg0) > 0, "cpuset shrink forced no migrations"
        result = ctx.checks.assert_cgroup(cg0, None)
        result.merge(collect_all(handles[1:], ctx.checks))
        return result
