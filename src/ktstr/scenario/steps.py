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

A step's hold is validated when the `Step` is built. Before anything is
created the whole list is checked: every cpuset against `ctx.topo`, every
static setup, every spawn's worker count against its work type's group size,
no spawn into a cgroup frozen at that point, capture tags used once, and every
cgroup name an op uses must exist at that point (backdrop cgroups always;
op-added cgroups from their op on; setup cgroups inside their own step, and
for non-loop steps only after the ops, because setup comes after them). A loop
step's ops are checked twice, the second time on what the first pass left, so a
loop that re-adds a cgroup it never removes, uses one it removed, or spawns into
one it froze fails before it runs. Names from a setup function are only known
when it runs, so ops of the step that has one are not name-checked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import overload

from ktstr.checks import AssertResult, PayloadResult
from ktstr.errors import ConfigError
from ktstr.payload import LivePayloads, Payload, RunningPayload
from ktstr.payload import start as start_payload
from ktstr.payload.run import already_running, not_one
from ktstr.scenario.backdrop import Backdrop
from ktstr.scenario.cgroup_def import CgroupDef
from ktstr.scenario.ctx import Ctx, SchedulerControl
from ktstr.scenario.execute import kill_and_remove, plan_defs
from ktstr.scenario.hold import HoldSpec
from ktstr.scenario.ops import (
    AddCgroup,
    AttachScheduler,
    CaptureCgroupProcs,
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
)
from ktstr.workload import WorkerReport, WorkloadConfig, WorkloadHandle

log = logging.getLogger(__name__)

SetupFactory = Callable[[Ctx], Sequence[CgroupDef]]
Setup = Sequence[CgroupDef] | SetupFactory


class _HoldAttr:
    """`Step.hold(h)` builds a hold-only step; `step.hold` is that step's HoldSpec."""

    @overload
    def __get__(self, obj: None, owner: type[Step]) -> Callable[[HoldSpec], Step]: ...
    @overload
    def __get__(self, obj: Step, owner: type[Step]) -> HoldSpec: ...

    def __get__(self, obj: Step | None,
                owner: type[Step]) -> HoldSpec | Callable[[HoldSpec], Step]:
        if obj is None:
            def hold_only(hold: HoldSpec) -> Step:
                """A step with no ops and no setup that just holds."""
                return owner(hold=hold)
            return hold_only
        return obj._hold


class Step:
    """One phase: `ops`, then (or, for loops, before) `setup`, then `hold`."""

    __slots__ = ("_hold", "ops", "setup")
    hold = _HoldAttr()

    def __init__(self, ops: Iterable[Op] = (), setup: Setup = (),
                 hold: HoldSpec = HoldSpec.FULL) -> None:
        self.ops: tuple[Op, ...] = tuple(ops)
        for op in self.ops:
            if not isinstance(op, Op):
                raise ConfigError(f"Step: {op!r} is not an Op; hint: build ops with "
                                  "Op.add_cgroup(...), Op.spawn(...), ...")
        if callable(setup):
            self.setup: tuple[CgroupDef, ...] | SetupFactory = setup
        else:
            self.setup = tuple(setup)
            for d in self.setup:
                if not isinstance(d, CgroupDef):
                    raise ConfigError(f"Step: setup item {d!r} is not a CgroupDef; hint: pass "
                                      "a list of CgroupDef or a function (ctx) -> list")
        if not isinstance(hold, HoldSpec):
            raise ConfigError(f"Step: hold {hold!r} is not a HoldSpec; hint: e.g. "
                              "HoldSpec.FULL or HoldSpec.fixed(1.0)")
        try:  # here, not in execute_steps: a module-level step list fails before any boot
            hold.validate()
        except ConfigError as err:
            raise ConfigError(f"Step: {err}") from None
        self._hold = hold

    @classmethod
    def with_defs(cls, defs: Setup, hold: HoldSpec = HoldSpec.FULL) -> Step:
        """A step that sets up `defs` (a list, or a function of ctx) and holds."""
        return cls(setup=defs, hold=hold)

    @classmethod
    def with_op(cls, op: Op, hold: HoldSpec = HoldSpec.FULL) -> Step:
        """A step that applies one op and holds."""
        return cls(ops=(op,), hold=hold)

    @classmethod
    def with_payload(cls, payload: Payload, hold: HoldSpec = HoldSpec.FULL) -> Step:
        """A step that starts `payload` (default args, runner's cgroup) and holds; stop it
        with `Op.wait_payload`/`Op.kill_payload` later, or it is killed at the end."""
        return cls(ops=(Op.run_payload(payload),), hold=hold)

    def set_ops(self, ops: Iterable[Op]) -> Step:
        """A copy with `ops` REPLACING this step's ops (as the seed's `set_ops`)."""
        return Step(ops, self.setup, self._hold)

    def set_hold(self, hold: HoldSpec) -> Step:
        """A copy with `hold` replacing this step's hold."""
        return Step(self.ops, self.setup, hold)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Step):
            return NotImplemented
        return (self.ops, self.setup, self._hold) == (other.ops, other.setup, other._hold)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Step(ops={list(self.ops)!r}, setup={self.setup!r}, hold={self._hold!r})"


def validate_steps(ctx: Ctx, steps: Sequence[Step], backdrop: Backdrop | None = None) -> None:
    """Check the whole step list (and backdrop) without side effects; raise ConfigError
    on the first problem (see the module docstring for what is checked)."""
    if not steps:
        raise ConfigError("execute_steps got no steps; hint: pass at least one Step, e.g. "
                          "[Step.with_defs([CgroupDef('cg_0')], HoldSpec.FULL)]")
    if backdrop is not None and not isinstance(backdrop, Backdrop):
        raise ConfigError(f"execute_steps: backdrop {backdrop!r} is not a Backdrop; hint: "
                          "e.g. Backdrop(cgroups=[CgroupDef('bg')])")
    state = _Names()
    payloads: list[tuple[str, str]] = []  # (name, cgroup) of payloads running here
    if backdrop is not None:
        plan_defs(ctx, backdrop.cgroups)  # cpusets, affinities on this topology
        state.live |= backdrop.names
        state.check_ops(ctx, "backdrop", backdrop.ops, set(state.live), set(), loop=False)
        _check_payload_ops("backdrop", backdrop.ops, payloads)
    for i, step in enumerate(steps, 1):
        if not isinstance(step, Step):
            raise ConfigError(f"step {i}: {step!r} is not a Step; hint: build it with "
                              "Step(...), Step.with_defs(...) or Step.with_op(...)")
        where = f"step {i}"
        local: set[str] | None = None  # None: a setup function, names unknown
        if not callable(step.setup):
            plan_defs(ctx, step.setup)  # duplicate names, cpusets, worker counts
            local = {d.name for d in step.setup}
            clash = sorted(local & state.live)
            if clash:
                raise ConfigError(f"{where}: setup cgroup {clash[0]!r} already exists (a "
                                  "backdrop cgroup, or added by an earlier Op.add_cgroup); "
                                  "hint: give it another name or remove it first with "
                                  "Op.remove_cgroup")
        visible: set[str] | None = None
        if local is not None:
            visible = state.live | local if step.hold.is_loop else set(state.live)
        state.check_ops(ctx, where, step.ops, visible, local or set(), step.hold.is_loop)
        if step.hold.is_loop:  # the ops run again on what their first pass left
            state.check_ops(ctx, f"{where} (the loop's second pass)", step.ops, visible,
                            local or set(), loop=True, again=True)
        state.frozen &= state.live  # a step's setup cgroups end with it, frozen or not
        # A loop step applies its ops again: a second pass shows a payload started twice.
        for _ in range(2 if step.hold.is_loop else 1):
            _check_payload_ops(where, step.ops, payloads)
        if local is not None and not step.hold.is_loop:
            payloads[:] = [p for p in payloads if p[1] not in local]


class _Names:
    """What validation knows while it walks the ops: the persistent cgroups alive,
    which of them are frozen, the capture tags used."""

    def __init__(self) -> None:
        self.live: set[str] = set()  # backdrop and op-added cgroups alive at this point
        self.frozen: set[str] = set()
        self.tags: set[str] = set()

    def check_ops(self, ctx: Ctx, where: str, ops: Sequence[Op], visible: set[str] | None,
                  local: set[str], loop: bool, again: bool = False) -> None:
        """`visible` is None when the step's setup is a function (names unknown); `again`
        re-checks a loop's ops on their second pass, where a capture tag may repeat
        (each pass overwrites it)."""
        for op in ops:
            if isinstance(op, SetCpuset | SetAffinity):
                op.spec.resolve(ctx.topo)
            if isinstance(op, SchedulerOp):
                _check_scheduler_op(where, ctx, op)
            if isinstance(op, Spawn):
                _check_group(where, op, op.workers or ctx.workers_per_cgroup)
                if op.cgroup in self.frozen:
                    raise ConfigError(
                        f"{where}: {op!r} spawns into cgroup {op.cgroup!r}, which is frozen at "
                        "that point: its workers would freeze before saying ready; hint: "
                        f"Op.unfreeze_cgroup({op.cgroup!r}) first")
            if isinstance(op, CaptureCgroupProcs) and not again:
                if op.tag in self.tags:
                    raise ConfigError(f"{where}: capture tag {op.tag!r} is used twice; "
                                      "hint: give each Op.capture_cgroup_procs its own tag")
                self.tags.add(op.tag)
            if visible is not None:
                _check_names(where, op, visible, local, loop)
            if isinstance(op, AddCgroup):
                if op.name in self.live or (visible is not None and op.name in visible):
                    raise ConfigError(f"{where}: Op.add_cgroup({op.name!r}) but that cgroup "
                                      "already exists; hint: use another name, or remove it "
                                      "first with Op.remove_cgroup")
                self.live.add(op.name)
                if visible is not None:
                    visible.add(op.name)
            elif isinstance(op, RemoveCgroup):
                self.live.discard(op.name)
                self.frozen.discard(op.name)
                if visible is not None:
                    visible.discard(op.name)
            elif isinstance(op, FreezeCgroup):
                self.frozen.add(op.name)
            elif isinstance(op, UnfreezeCgroup):
                self.frozen.discard(op.name)


def _check_group(where: str, op: Spawn, workers: int) -> None:
    group = op.work.group_size
    if group is not None and workers % group:
        raise ConfigError(f"{where}: {op!r} would fork {workers} workers, not a multiple of "
                          f"{op.work.name}'s group size {group}; hint: pass "
                          f"workers={max(group, workers - workers % group)}")


def _check_payload_ops(where: str, ops: Sequence[Op], running: list[tuple[str, str]]) -> None:
    """Apply the payload rules of ktstr.payload.run to `running`, raising where broken."""
    for op in ops:
        try:
            if isinstance(op, RunPayload):
                op.payload.locate()  # a missing binary fails before anything runs
                key = (op.payload.name, op.cgroup or "")
                if key in running:
                    raise already_running(*key)
                running.append(key)
            elif isinstance(op, WaitPayload | KillPayload):
                tag = "Op.wait_payload" if isinstance(op, WaitPayload) else "Op.kill_payload"
                found = [p for p in running
                         if p[0] == op.name and (op.cgroup is None or p[1] == op.cgroup)]
                if len(found) != 1:
                    raise not_one(tag, op.name, op.cgroup, [c for _, c in found])
                running.remove(found[0])
            elif isinstance(op, RemoveCgroup):
                running[:] = [p for p in running if p[1] != op.name]
            elif isinstance(op, MoveAllTasks):
                running[:] = [(n, op.dst if c == op.src else c) for n, c in running]
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


def _check_names(where: str, op: Op, visible: set[str], local: set[str], loop: bool) -> None:
    for name in op.names():
        if name in visible:
            continue
        why = ("it is in this step's setup, which is applied after the step's ops"
               if name in local and not loop else "no earlier op adds it")
        raise ConfigError(f"{where}: {op!r} refers to cgroup {name!r}, which does not exist "
                          f"at that point: {why}; hint: add it with Op.add_cgroup({name!r}) "
                          "before this op, or use a loop step whose setup defines it")


def _slot(ctx: Ctx, op: SchedulerOp) -> SchedulerControl:
    if ctx.scheduler is None:
        raise ConfigError(f"{op!r} needs the run's scheduler slot, which this Ctx lacks; "
                          "hint: scheduler ops run in a ktstr test (a ctx from the guest agent)")
    return ctx.scheduler


def _check_scheduler_op(where: str, ctx: Ctx, op: SchedulerOp) -> None:
    slot = _slot(ctx, op)
    if isinstance(op, AttachScheduler | ReplaceScheduler) and op.scheduler.name not in slot.staged:
        staged = ", ".join(sorted(slot.staged)) or "none"
        raise ConfigError(f"{where}: {op!r}: {op.scheduler.name} is not staged for this test "
                          f"(staged: {staged}); hint: add it to @ktstr_test("
                          "staged_schedulers=[...]) so that it is found before the VM boots")


def apply_scheduler_op(ctx: Ctx, op: SchedulerOp) -> None:
    """Switch the run's scheduler as `op` says (SchedulerFailed/KtstrError if it cannot)."""
    slot = _slot(ctx, op)
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
            started.append(self._spawn(name, plan.config))
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

