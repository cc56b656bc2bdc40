"""`Step` and `execute_steps`: a scenario as phases of ops, cgroups and holds (seed 004).

A `Step` is `ops` + `setup` (CgroupDefs, or a function `(ctx) -> defs` called
when the step starts) + a `HoldSpec`. `execute_steps` runs steps 1..N in order,
setting `ctx.current_step` (0 is the baseline before any step):

- a non-loop step applies its ops, then creates its setup cgroups, forks and
  starts their workers, then holds `frac * ctx.duration` or `fixed` seconds;
- a loop step (`HoldSpec.loop_at(i)`) creates its setup once, then applies its
  ops every `i` seconds until the scenario's time runs out: `ctx.duration`
  seconds counted from the start of `execute_steps` (at least one pass).

Phases and judging: a step's setup cgroups belong to that step; at its end
their workers are stopped, collected and judged (`ctx.checks.assert_cgroup`,
with the cgroup's current cpuset) and the cgroups removed. Cgroups made by
`Op.add_cgroup` and workers forked by `Op.spawn` live on until
`Op.stop_cgroup` / `Op.remove_cgroup` or the end of the last step, and are
judged then. Every collected report carries `step = ctx.current_step` at the
time of collection. A frozen cgroup is thawed before its workers are asked to
stop. Workers are killed and cgroups removed in a `finally`, whatever raised.

Payloads (`Op.run_payload`) run in the background until `Op.wait_payload` /
`Op.kill_payload`, until their cgroup is removed (a step's setup cgroup at the
step's end, or `Op.remove_cgroup`), or until the scenario ends: whatever still
runs then is killed. Each run's metrics and checks land in the result's
`payloads`, recorded, not judged (seed 004: a payload op's checks do not fail
the test; use `ctx.payload` to gate on them). Starting a name again where it
still runs, and waiting for or killing one that is not running, are errors,
found before anything runs where the step list shows them.

A `Backdrop` (backdrop.py) adds cgroups and ops set up at step 0, before step
1, that persist like op-added cgroups and are judged after the last step.

The step list (and backdrop) is checked before anything is created: validate.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from ktstr.checks import AssertResult, PayloadResult
from ktstr.errors import ConfigError
from ktstr.payloads import LivePayloads, RunningPayload
from ktstr.payloads import start as start_payload
from ktstr.scenario.backdrop import Backdrop
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.execute import kill_and_remove, placed_config, plan_defs
from ktstr.scenario.ops import (
    AddCgroup,
    AttachScheduler,
    CaptureCgroupProcs,
    CaptureSnapshot,
    ClearCpuset,
    DetachScheduler,
    FreezeCgroup,
    KillPayload,
    MoveAllTasks,
    Op,
    RemoveCgroup,
    ReplaceScheduler,
    RestartScheduler,
    RunPayload,
    SchedulerOp,
    SetAffinity,
    SetCpuset,
    Spawn,
    StopCgroup,
    SwapCpusets,
    UnfreezeCgroup,
    WaitPayload,
    WatchSnapshot,
)
from ktstr.scenario.step import Step
from ktstr.scenario.validate import scheduler_slot, snapshot_control, validate_steps
from ktstr.workload import WorkerReport, WorkloadConfig, WorkloadHandle

log = logging.getLogger(__name__)


def apply_scheduler_op(ctx: Ctx, op: SchedulerOp) -> None:
    """Switch the run's scheduler as `op` says (SchedulerFailed/KtstrError if it cannot)."""
    slot = scheduler_slot(ctx, op)
    if isinstance(op, AttachScheduler):
        slot.attach(op.scheduler)
    elif isinstance(op, DetachScheduler):
        slot.detach()
    elif isinstance(op, RestartScheduler):
        slot.restart()
    elif isinstance(op, ReplaceScheduler):
        slot.replace(op.scheduler)
    log.info("step %d: %r -> %s attached", ctx.current_step, op, slot.name or "no scheduler")


class _Run:
    """The live state of one `execute_steps` call: cgroups, workers, cpusets, result."""

    def __init__(self, ctx: Ctx, captures: dict[str, list[int]]) -> None:
        self.ctx = ctx
        self.captures = captures
        self.result = AssertResult.ok()
        self.handles: dict[str, list[WorkloadHandle]] = {}  # by cgroup, not yet collected
        self.every_handle: list[WorkloadHandle] = []
        self.cpusets: dict[str, frozenset[int] | None] = {}
        self.frozen: set[str] = set()
        self.persistent: list[str] = []  # op-added cgroups, in creation order
        self.local: list[str] = []  # the current step's setup cgroups
        self.next_idx = 0
        self.payloads = LivePayloads()

    # -- workers -------------------------------------------------------------------

    def _spawn(self, name: str, cfg: WorkloadConfig) -> WorkloadHandle:
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

    # -- setup and steps -------------------------------------------------------------

    def setup(self, step: Step) -> None:
        defs = step.setup(self.ctx) if callable(step.setup) else step.setup
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
            started.append(self._spawn(name, placed_config(self.ctx, plan)))
        for handle in started:
            handle.start()

    def backdrop(self, backdrop: Backdrop) -> None:
        """Create, pin and start the backdrop's cgroups (they persist), then its ops."""
        started: list[WorkloadHandle] = []
        for plan in plan_defs(self.ctx, backdrop.cgroups):
            name = plan.cgdef.name
            self.ctx.cgroups.create(name)
            self.persistent.append(name)
            self.cpusets[name] = plan.cpuset
            if plan.cpuset is not None:
                self.ctx.cgroups.set_cpuset(name, plan.cpuset)
            started.append(self._spawn(name, plan.config))
        for handle in started:
            handle.start()
        for op in backdrop.ops:
            self.apply(op)

    def end_step(self) -> None:
        """Judge and remove the step's setup cgroups (payloads in them are killed first)."""
        for name in list(self.local):
            self.kill_payloads_in(name)
            self.collect(name)
        while self.local:
            self._remove(self.local[-1])

    def finish(self) -> None:
        """After the last step: kill payloads still running, judge what op-spawned workers
        remain, remove op cgroups."""
        for run in self.payloads.take_all():
            self.record(run, RunningPayload.kill)
        for name in list(self.handles):
            self.collect(name)
        while self.persistent:
            self._remove(self.persistent[-1])

    def _remove(self, name: str) -> None:
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

    # -- ops ---------------------------------------------------------------------------

    def apply(self, op: Op) -> None:
        cg = self.ctx.cgroups
        if isinstance(op, SchedulerOp):
            apply_scheduler_op(self.ctx, op)
        elif isinstance(op, AddCgroup):
            cg.create(op.name)
            self.persistent.append(op.name)
            self.cpusets[op.name] = None
        elif isinstance(op, RemoveCgroup):
            self.kill_payloads_in(op.name)
            self.collect(op.name)
            self._remove(op.name)
        elif isinstance(op, SetCpuset):
            self.cpusets[op.cgroup] = cg.set_cpuset(op.cgroup, op.spec.resolve(self.ctx.topo))
        elif isinstance(op, ClearCpuset):
            cg.clear_cpuset(op.cgroup)
            self.cpusets[op.cgroup] = None
        elif isinstance(op, SwapCpusets):
            a, b = self.cpusets.get(op.a), self.cpusets.get(op.b)
            for name, cpus in ((op.a, b), (op.b, a)):
                if cpus is None:
                    cg.clear_cpuset(name)
                else:
                    cg.set_cpuset(name, cpus)
                self.cpusets[name] = cpus
        elif isinstance(op, Spawn):
            cfg = WorkloadConfig(workers=op.workers or self.ctx.workers_per_cgroup,
                                 work=op.work)
            self._spawn(op.cgroup, cfg).start()
        elif isinstance(op, StopCgroup):
            self.collect(op.name)
        elif isinstance(op, SetAffinity):
            cpus = op.spec.resolve(self.ctx.topo)
            for tid in cg.threads(op.cgroup):  # every task: a pcomm leader's threads too
                set_affinity(tid, cpus)
        elif isinstance(op, MoveAllTasks):
            cg.move_tasks(op.src, op.dst)
            self.handles.setdefault(op.dst, []).extend(self.handles.pop(op.src, []))
            for run in self.payloads.runs:  # payloads moved too: address them by dst now
                if run.cgroup == op.src:
                    run.cgroup = op.dst
        elif isinstance(op, FreezeCgroup):
            cg.freeze(op.name)
            self.frozen.add(op.name)
        elif isinstance(op, UnfreezeCgroup):
            cg.unfreeze(op.name)
            self.frozen.discard(op.name)
        elif isinstance(op, CaptureCgroupProcs):
            self.captures[op.tag] = list(cg.procs(op.cgroup))
        elif isinstance(op, CaptureSnapshot):
            took = snapshot_control(self.ctx, op).capture(op.name)
            log.info("step %d: %r: %.1f ms frozen", self.ctx.current_step, op,
                     float(took.get("frozen_ms", 0.0)))
        elif isinstance(op, WatchSnapshot):
            armed = snapshot_control(self.ctx, op).watch(op.symbol)
            log.info("step %d: %r: slot %s at %#x", self.ctx.current_step, op,
                     armed.get("slot"), int(armed.get("address", 0)))
        elif isinstance(op, RunPayload):
            self.payloads.check_free(op.payload.name, op.cgroup or "")
            cgroup_dir = None if op.cgroup is None else cg.path(op.cgroup)
            self.payloads.add(start_payload(op.payload, op.args, cgroup=op.cgroup or "",
                                            cgroup_dir=cgroup_dir, judged=False))
        elif isinstance(op, WaitPayload):
            self.record(self.payloads.take("Op.wait_payload", op.name, op.cgroup),
                        RunningPayload.wait)
        elif isinstance(op, KillPayload):
            self.record(self.payloads.take("Op.kill_payload", op.name, op.cgroup),
                        RunningPayload.kill)
        else:  # pragma: no cover - every variant above
            raise ConfigError(f"op {op!r} is not supported by execute_steps")


def set_affinity(pid: int, cpus: frozenset[int]) -> None:
    """Pin `pid` to `cpus`; a task that already exited is skipped."""
    with contextlib.suppress(ProcessLookupError):
        os.sched_setaffinity(pid, cpus)


def _loop(run: _Run, ops: Sequence[Op], interval: float, deadline: float) -> None:
    """Apply `ops` every `interval` seconds until `deadline` (monotonic); at least once."""
    while True:
        began = time.monotonic()
        for op in ops:
            run.apply(op)
        next_pass = began + interval
        if next_pass >= deadline:
            time.sleep(max(0.0, deadline - time.monotonic()))
            return
        time.sleep(max(0.0, next_pass - time.monotonic()))


def execute_steps(ctx: Ctx, steps: Sequence[Step], *,
                  captures: dict[str, list[int]] | None = None,
                  backdrop: Backdrop | None = None) -> AssertResult:
    """Run `steps` in order (see the module docstring); one merged result.

    `captures`, when given, receives each `Op.capture_cgroup_procs` as tag -> pids.
    `backdrop`: cgroups and ops set up before step 1 that live through every step.
    """
    steps = list(steps)
    validate_steps(ctx, steps, backdrop)
    run = _Run(ctx, {} if captures is None else captures)
    deadline = time.monotonic() + ctx.duration
    try:
        if backdrop is not None:
            ctx.current_step = 0
            run.backdrop(backdrop)
        for i, step in enumerate(steps, 1):
            ctx.current_step = i
            if step.hold.is_loop:
                run.setup(step)
                _loop(run, step.ops, step.hold.value, deadline)
            else:
                for op in step.ops:
                    run.apply(op)
                run.setup(step)
                time.sleep(step.hold.seconds(ctx.duration))
            run.end_step()
        run.finish()
        return run.result
    finally:
        run.cleanup()

