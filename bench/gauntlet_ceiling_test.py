"""gauntlet_ceiling.py's test: a 2 s body with one spinning worker per vCPU, run under
each measured topology (the guest imports this module: keep it light). Its memory size
is its own (2056 MiB) so that its saved guests are the bench's alone."""

import time

from ktstr import Ctx, ktstr_test
from ktstr.scenario import setup_cgroups
from ktstr.work import SpinWait
from ktstr.workload import WorkloadConfig


@ktstr_test(llcs=1, cores=4, threads=1, duration_s=2, memory_mb=2056)
def gauntlet_ceiling_body(ctx: Ctx) -> None:
    wl = WorkloadConfig(workers=ctx.topo.cpus, work=SpinWait())
    with setup_cgroups(ctx, 1, wl) as handles:
        time.sleep(ctx.duration)
        handles[0].stop_and_collect()
