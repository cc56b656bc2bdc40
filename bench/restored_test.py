"""restored_cost.py's test: one cgroup of one worker for half a second, the smallest test
that still forks a worker, watches it and judges it (the guest imports this module: keep
it light)."""

from ktstr import CgroupDef, Ctx, execute_defs, ktstr_test
from ktstr.checks import AssertResult


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=0.5)
def one_worker(ctx: Ctx) -> AssertResult:
    return execute_defs(ctx, [CgroupDef("one", workers=1)])
