"""The tutorial's test: two cgroups with different lifecycles on separate LLCs.

`background_spinner` keeps LLC 0 busy for the whole run; `phased_worker`
loops spin 100 ms / yield 20 ms on LLC 1. Checked: fairness within each
cgroup, throughput parity, and that no worker ran outside its LLC.
"""

from ktstr import CgroupDef, CpusetSpec, Ctx, execute_defs, ktstr_test, work
from ktstr.checks import AssertResult


@ktstr_test(llcs=2, cores=2, threads=1, duration_s=10, watchdog_timeout_s=30,
            isolation=True, max_spread_pct=15.0, max_throughput_cv=0.5, min_work_rate=1.0)
def mixed_workloads(ctx: Ctx) -> AssertResult:
    return execute_defs(ctx, [
        CgroupDef("background_spinner", workers=2, work=work.SpinWait(),
                  cpuset=CpusetSpec.llc(0)),
        CgroupDef("phased_worker", workers=2,
                  work=work.Sequence(work.Spin(0.100), work.Yield(0.020)),
                  cpuset=CpusetSpec.llc(1)),
    ])
