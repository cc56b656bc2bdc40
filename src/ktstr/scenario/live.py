"""`LiveScenario`: the live state of one `execute_steps` call.

What the steps and their ops have made so far: the cgroups (a step's own
setup cgroups, and the persistent ones of the backdrop and `Op.add_cgroup`),
the workers not yet collected, by cgroup, each cgroup's cpuset (None: all
CPUs) to judge its workers against, the frozen cgroups, the payloads running,
the captures and the merged result. Ops change it through `Op.apply`;
execute_steps (steps.py) drives the phases: setup, end of step, finish, and
`cleanup` whatever raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from ktstr.checks import AssertResult, PayloadResult
from ktstr.errors import ConfigError
from ktstr.payloads import LivePayloads, RunningPayload
from ktstr.scenario.cgroup_def import CgroupDef
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.execute import kill_and_remove, placed_config, plan_defs
from ktstr.workload import WorkerReport, WorkloadConfig, WorkloadHandle

log = logging.getLogger(__name__)

#: A step's setup: CgroupDefs, or a function of ctx called when the step starts.
SetupDefs = Sequence[CgroupDef] | Callable[[Ctx], Sequence[CgroupDef]]


class LiveScenario:
    """The cgroups, workers, cpusets, payloads and result of one `execute_steps` call."""

    def __init__(self, ctx: Ctx, captures: dict[str, list[int]]) -> None:
        self.ctx = ctx
        self.captures = captures
        self.result = AssertResult.ok()
        self.handles: dict[str, list[WorkloadHandle]] = {}  # by cgroup, not yet collected
        self.every_handle: list[WorkloadHandle] = []
        self.cpusets: dict[str, frozenset[int] | None] = {}
        self.frozen: set[str] = set()
        self.persistent: list[str] = []  # backdrop and op-added cgroups, in creation order
        self.local: list[str] = []  # the current step's setup cgroups
        self.next_idx = 0
        self.payloads = LivePayloads()

    # -- workers -------------------------------------------------------------------

    def spawn(self, name: str, cfg: WorkloadConfig) -> WorkloadHandle:
        """Fork the workers of `cfg` into cgroup `name` (not started yet)."""
        handle = WorkloadHandle.spawn(cfg, cgroup_dir=self.ctx.cgroups.path(name),
                                      group_idx=self.next_idx)
        self.next_idx += 1
        self.every_handle.append(handle)
        self.handles.setdefault(name, []).append(handle)
        return handle

    def collect(self, name: str) -> None:
        """Stop and judge the workers in `name` (thawing it first); stamp their step."""
        if name in self.frozen:
            self.ctx.cgroups.unfreeze(name)
            self.frozen.discard(name)
        handles = self.handles.pop(name, [])
        if not handles:
            return
        step = self.ctx.current_step
        reports: list[WorkerReport] = [replace(r, step=step) for h in handles
                                       for r in h.stop_and_collect()]
        self.result.merge(self.ctx.checks.assert_cgroup(reports, self.cpusets.get(name),
                                                        name=name))

    # -- payloads ----------------------------------------------------------------------

    def record(self, run: RunningPayload, how: Callable[[RunningPayload], PayloadResult]) -> None:
        """Reap `run` with `how` (wait or kill); keep its metrics, do not judge them."""
        result = how(run)
        self.result.payloads.append(result)
        self.ctx.payload_runs.append(result)

    def kill_payloads_in(self, cgroup: str) -> None:
        for run in self.payloads.take_in(cgroup):
            self.record(run, RunningPayload.kill)

    # -- cgroups and phases ------------------------------------------------------------

    def setup(self, setup: SetupDefs) -> None:
        """Create, pin and start the current step's setup cgroups."""
        defs = setup(self.ctx) if callable(setup) else setup
        plans = plan_defs(self.ctx, defs)
        for plan in plans:
            if plan.cgdef.name in self.persistent:
                raise ConfigError(f"step {self.ctx.current_step}: setup cgroup "
                                  f"{plan.cgdef.name!r} already exists (a backdrop cgroup, or "
                                  "added by Op.add_cgroup); hint: give it another name")
        started: list[WorkloadHandle] = []
        for plan in plans:
            name = plan.cgdef.name
            self.ctx.cgroups.create(name)
            self.local.append(name)
            self.cpusets[name] = plan.cpuset
            if plan.cpuset is not None:
                self.ctx.cgroups.set_cpuset(name, plan.cpuset)
            started.append(self.spawn(name, placed_config(self.ctx, plan)))
        for handle in started:
            handle.start()

    def setup_backdrop(self, defs: Sequence[CgroupDef]) -> None:
        """Create, pin and start a backdrop's cgroups; they persist."""
        started: list[WorkloadHandle] = []
        for plan in plan_defs(self.ctx, defs):
            name = plan.cgdef.name
            self.ctx.cgroups.create(name)
            self.persistent.append(name)
            self.cpusets[name] = plan.cpuset
            if plan.cpuset is not None:
                self.ctx.cgroups.set_cpuset(name, plan.cpuset)
            started.append(self.spawn(name, plan.config))
        for handle in started:
            handle.start()

    def end_step(self) -> None:
        """Judge and remove the step's setup cgroups (payloads in them are killed first)."""
        for name in list(self.local):
            self.kill_payloads_in(name)
            self.collect(name)
        while self.local:
            self.remove(self.local[-1])

    def finish(self) -> None:
        """After the last step: kill payloads still running, judge what op-spawned workers
        remain, remove op cgroups."""
        for run in self.payloads.take_all():
            self.record(run, RunningPayload.kill)
        for name in list(self.handles):
            self.collect(name)
        while self.persistent:
            self.remove(self.persistent[-1])

    def remove(self, name: str) -> None:
        """Remove cgroup `name` (its workers already collected) and forget it."""
        self.ctx.cgroups.remove(name)
        self.local = [n for n in self.local if n != name]
        self.persistent = [n for n in self.persistent if n != name]
        self.cpusets.pop(name, None)
        self.frozen.discard(name)

    def cleanup(self) -> None:
        """Whatever happened: thaw, kill every worker, remove every cgroup left."""
        for name in sorted(self.frozen):
            try:
                self.ctx.cgroups.unfreeze(name)
            except Exception as err:
                log.error("thawing cgroup %s failed: %s", name, err)
        for run in self.payloads.take_all():
            try:
                run.kill()
            except Exception as err:
                log.error("killing payload %s (pid %d) failed: %s", run.name, run.pid, err)
        kill_and_remove(self.ctx, self.every_handle, self.persistent + self.local)
