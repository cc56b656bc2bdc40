"""VM bodies for performance mode. Not a test module.

`two_pinned_vcpus`: a 2-vCPU EEVDF guest (no sched_ext scheduler, so a host
thread per vCPU under TCG) whose body runs a spinner on each vCPU long enough for
the host to read its vCPU threads' affinity while it runs.
`four_vcpus_one_thread`: a 4-vCPU guest under scx_simple, which under TCG runs every
vCPU on one host thread: one thread, so one host CPU, even on a 2-CPU host.
`too_many_vcpus`: more vCPUs than any host this suite runs on gives each a CPU of
its own (64), refused before a boot.
"""

from __future__ import annotations

from ktstr import AssertResult, CgroupDef, Ctx, Scheduler, execute_defs, ktstr_test


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, memory_mb=512, performance_mode=True)
def two_pinned_vcpus(ctx: Ctx) -> AssertResult:
    return execute_defs(ctx, [CgroupDef("spin", workers=2)])


@ktstr_test(llcs=1, cores=4, threads=1, duration_s=2, memory_mb=512,
            scheduler=Scheduler("scx_simple"), performance_mode=True)
def four_vcpus_one_thread(ctx: Ctx) -> AssertResult:
    return execute_defs(ctx, [CgroupDef("spin", workers=4)])


@ktstr_test(llcs=2, cores=32, threads=1, duration_s=1, performance_mode=True)
def too_many_vcpus(ctx: Ctx) -> AssertResult:
    return AssertResult()
