"""Test bodies that switch the scheduler mid-run, for test_scheduler_ops.py (not collected).

Each body watches from the kernel's side while its steps run: sched_ext's state
and ops name, and for the workers of a cgroup that lives through the switches,
`ext.enabled` (the task is in the sched_ext class) and `se.sum_exec_runtime`
(it keeps running) from /proc/<tid>/sched, stamped with the step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ktstr import (
    AssertResult,
    CgroupDef,
    Ctx,
    HoldSpec,
    Op,
    Scheduler,
    Step,
    execute_steps,
    ktstr_test,
    work,
)
from ktstr.system import sched_ext
from tests.vm.probes import Sampler, cgroup_pids, reports_by_cgroup, sched_field

SIMPLE = Scheduler("scx_simple")
CENTRAL = Scheduler("scx_central")


@dataclass
class Look:
    step: int
    state: str
    ops: str | None
    sched_pid: int | None
    on_ext: list[bool] = field(default_factory=list)  # per worker of the watched cgroup
    runtime_ms: float = 0.0  # their se.sum_exec_runtime, summed


class Watch:
    """Samples sched_ext and the workers of `cgroup` every 100 ms, per step.

    A step's samples count from the moment its ops are done (a scheduler switch
    takes seconds under emulation): `settled(defs)` is the step's setup function,
    which execute_steps calls right after the ops; it marks that moment.
    """

    def __init__(self, ctx: Ctx, cgroup: str) -> None:
        self.ctx = ctx
        self.dir: Path = ctx.cgroups.path(cgroup)
        self.looks: list[Look] = []
        self.ready: dict[int, int] = {}  # step -> index of its first settled sample
        self.pids: list[int | None] = []  # ctx.sched_pid once each step's ops are done

    def settled(self, defs: list[CgroupDef] | None = None) -> Callable[[Ctx], list[CgroupDef]]:
        def setup(ctx: Ctx) -> list[CgroupDef]:
            self.ready[ctx.current_step] = len(self.looks)
            self.pids.append(ctx.sched_pid)
            return list(defs or [])
        return setup

    def __call__(self) -> None:
        look = Look(self.ctx.current_step, sched_ext.state(), sched_ext.ops_name(),
                    self.ctx.sched_pid)
        for pid in cgroup_pids(self.dir) if self.dir.exists() else []:
            enabled = sched_field(pid, "ext.enabled")
            runtime = sched_field(pid, "se.sum_exec_runtime")
            if enabled is None or runtime is None:
                continue  # it went away between listing and reading
            look.on_ext.append(enabled == 1)
            look.runtime_ms += runtime
        self.looks.append(look)

    def step(self, n: int) -> list[Look]:
        """The samples of step `n` after its ops were done that saw the workers, but for
        the first and the last: a sample is not atomic, and these two may straddle the
        switch at either end of the step."""
        return [x for x in self.looks[self.ready[n]:] if x.step == n and x.on_ext][1:-1]

    def progress_ms(self, n: int) -> float:
        looks = self.step(n)
        return looks[-1].runtime_ms - looks[0].runtime_ms if len(looks) > 1 else 0.0


def _through(watch: Watch, steps: list[Step]) -> AssertResult:
    """Run `steps` after a first op that starts two spinners in cgroup `through`, which
    live through every switch, while `watch` samples."""
    steps[0] = steps[0].set_ops((Op.add_cgroup("through"),
                                 Op.spawn("through", work.SpinWait(), 2), *steps[0].ops))
    with Sampler(watch, 0.1):
        return execute_steps(watch.ctx, steps)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=8, scheduler=SIMPLE)
def ab_detach_mid_run(ctx: Ctx) -> AssertResult:
    """The A/B use: the same workload under scx_simple, then under EEVDF, in one VM; the
    spinners of `through` run across the detach."""
    watch = Watch(ctx, "through")
    result = _through(watch, [
        Step.with_defs(watch.settled([CgroupDef("a_side", workers=2)]), HoldSpec.frac(0.5)),
        Step(ops=[Op.detach_scheduler()], setup=watch.settled([CgroupDef("b_side", workers=2)]),
             hold=HoldSpec.frac(0.5)),
    ])
    under_scx, under_eevdf = watch.step(1), watch.step(2)
    assert under_scx and under_eevdf, [(x.step, x.state, len(x.on_ext)) for x in watch.looks]
    assert all(x.state == "enabled" and x.ops == "simple" and all(x.on_ext) and x.sched_pid
               for x in under_scx), under_scx
    assert all(x.state == "disabled" and not any(x.on_ext) and x.sched_pid is None
               for x in under_eevdf), under_eevdf
    assert watch.progress_ms(2) > 100, f"the spinners stalled after the detach: {under_eevdf}"
    sides = reports_by_cgroup(result)
    for name in ("a_side", "b_side", "through"):
        assert sides.get(name) and all(r.work_units > 0 for r in sides[name]), (name, sides)
    assert {r.step for r in sides["a_side"]} == {1} and {r.step for r in sides["b_side"]} == {2}
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=12, staged_schedulers=[SIMPLE, CENTRAL])
def attach_restart_replace_detach(ctx: Ctx) -> AssertResult:
    """From EEVDF: attach scx_simple, restart it, replace it by scx_central, detach."""
    hold = HoldSpec.frac(0.2)
    watch = Watch(ctx, "through")
    result = _through(watch, [
        Step(setup=watch.settled(), hold=hold),
        Step(ops=[Op.attach_scheduler(SIMPLE), Op.attach_scheduler(SIMPLE)],
             setup=watch.settled(), hold=hold),
        Step(ops=[Op.restart_scheduler()], setup=watch.settled(), hold=hold),
        Step(ops=[Op.replace_scheduler(CENTRAL)], setup=watch.settled(), hold=hold),
        Step(ops=[Op.detach_scheduler(), Op.detach_scheduler()], setup=watch.settled(),
             hold=hold),
    ])
    pids = watch.pids
    seen = [{(x.state, x.ops, all(x.on_ext), not any(x.on_ext)) for x in watch.step(n)}
            for n in range(1, 6)]
    detail = [[(x.state, x.ops, x.on_ext) for x in watch.step(n)] for n in range(1, 6)]
    assert seen[0] == {("disabled", None, False, True)}, detail[0]
    assert seen[1] == {("enabled", "simple", True, False)}, detail[1]
    assert seen[2] == {("enabled", "simple", True, False)}, detail[2]
    assert seen[3] == {("enabled", "central", True, False)}, detail[3]
    assert seen[4] == {("disabled", None, False, True)}, detail[4]
    assert pids[0] is None and pids[4] is None, pids
    assert len({pids[1], pids[2], pids[3]}) == 3, f"restart/replace kept a process: {pids}"
    for n in range(1, 6):
        assert watch.progress_ms(n) > 50, f"the spinners stalled in step {n}"
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=4, scheduler=SIMPLE)
def attach_unstaged(ctx: Ctx) -> AssertResult:
    """Attaching a scheduler that was not staged is refused before any step runs."""
    return execute_steps(ctx, [Step(ops=[Op.replace_scheduler(CENTRAL)], hold=HoldSpec.FULL)])
