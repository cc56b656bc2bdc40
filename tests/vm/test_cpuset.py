"""A worker in a cpuset runs only on that cpuset's CPUs, as the kernel itself reports."""

import time

from ktstr import Ctx, WorkloadConfig, WorkloadHandle, ktstr_test
from ktstr.checks import AssertResult


def _allowed(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


@ktstr_test(llcs=1, cores=4, threads=1, duration_s=3, isolation=True)
def worker_stays_in_its_cpuset(ctx: Ctx) -> AssertResult:
    ctx.cgroups.create("pinned")
    ctx.cgroups.set_cpuset("pinned", frozenset({1, 2}))
    cfg = WorkloadConfig(workers=2)
    with WorkloadHandle.spawn(cfg, cgroup_dir=ctx.cgroups.path("pinned"), start=True) as h:
        time.sleep(ctx.duration)
        # The kernel's own view while the workers run: each one is confined to 1-2.
        assert [_allowed(pid) for pid in h.pids] == ["1-2"] * 2
        reports = h.stop_and_collect()
    used = set().union(*(r.cpus_used for r in reports))
    assert used and used <= {1, 2}, f"workers ran on {sorted(used)}, outside 1-2"
    return ctx.checks.assert_cgroup(reports, frozenset({1, 2}), name="pinned")
