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

Before anything is created the whole list is checked: every hold, every
cpuset against `ctx.topo`, every static setup, and every cgroup name an op
uses must exist at that point (op-added cgroups from their op on; setup
cgroups inside their own step, and for non-loop steps only after the ops,
because setup comes after them). Names from a setup function are only known
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

from ktstr.checks import AssertResult
from ktstr.errors import ConfigError
from ktstr.scenario.cgroup_def import CgroupDef
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.execute import kill_and_remove, placed_config, plan_defs
from ktstr.scenario.hold import HoldSpec
from ktstr.scenario.ops import (
    AddCgroup,
    CaptureCgroupProcs,
    ClearCpuset,
    FreezeCgroup,
    MoveAllTasks,
    Op,
    RemoveCgroup,
    SetAffinity,
    SetCpuset,
    Spawn,
    StopCgroup,
    SwapCpusets,
    UnfreezeCgroup,
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
        self._hold = hold

    @classmethod
    def with_defs(cls, defs: Setup, hold: HoldSpec = HoldSpec.FULL) -> Step:
        """A step that sets up `defs` (a list, or a function of ctx) and holds."""
        return cls(setup=defs, hold=hold)

    @classmethod
    def with_op(cls, op: Op, hold: HoldSpec = HoldSpec.FULL) -> Step:
        """A step that applies one op and holds."""
        return cls(ops=(op,), hold=hold)

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


def validate_steps(ctx: Ctx, steps: Sequence[Step]) -> None:
    """Check the whole step list without side effects; raise ConfigError on the first
    problem (see the module docstring for what is checked)."""
    if not steps:
        raise ConfigError("execute_steps got no steps; hint: pass at least one Step, e.g. "
                          "[Step.with_defs([CgroupDef('cg_0')], HoldSpec.FULL)]")
    live: set[str] = set()  # op-added cgroups alive at this point
    tags: set[str] = set()
    for i, step in enumerate(steps, 1):
        if not isinstance(step, Step):
            raise ConfigError(f"step {i}: {step!r} is not a Step; hint: build it with "
                              "Step(...), Step.with_defs(...) or Step.with_op(...)")
        where = f"step {i}"
        try:
            step.hold.validate()
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        local: set[str] | None = None  # None: a setup function, names unknown
        if not callable(step.setup):
            plan_defs(ctx, step.setup)  # duplicate names, cpusets, worker counts
            local = {d.name for d in step.setup}
            clash = sorted(local & live)
            if clash:
                raise ConfigError(f"{where}: setup cgroup {clash[0]!r} already exists (added by "
                                  "an earlier Op.add_cgroup); hint: give it another name or "
                                  "remove it first with Op.remove_cgroup")
        visible: set[str] | None = None
        if local is not None:
            visible = live | local if step.hold.is_loop else set(live)
        for op in step.ops:
            if isinstance(op, SetCpuset | SetAffinity):
                op.spec.resolve(ctx.topo)
            if isinstance(op, CaptureCgroupProcs):
                if op.tag in tags:
                    raise ConfigError(f"{where}: capture tag {op.tag!r} is used twice; "
                                      "hint: give each Op.capture_cgroup_procs its own tag")
                tags.add(op.tag)
            if visible is not None:
                _check_names(where, op, visible, local or set(), step.hold.is_loop)
                if isinstance(op, RemoveCgroup):
                    visible.discard(op.name)
            if isinstance(op, AddCgroup):
                if visible is not None and op.name in visible:
                    raise ConfigError(f"{where}: Op.add_cgroup({op.name!r}) but that cgroup "
                                      "already exists; hint: use another name")
                live.add(op.name)
                if visible is not None:
                    visible.add(op.name)
            elif isinstance(op, RemoveCgroup):
                live.discard(op.name)


def _check_names(where: str, op: Op, visible: set[str], local: set[str], loop: bool) -> None:
    for name in op.names():
        if name in visible:
            continue
        why = ("it is in this step's setup, which is applied after the step's ops"
               if name in local and not loop else "no earlier op adds it")
        raise ConfigError(f"{where}: {op!r} refers to cgroup {name!r}, which does not exist "
                          f"at that point: {why}; hint: add it with Op.add_cgroup({name!r}) "
                          "before this op, or use a loop step whose setup defines it")


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

    # -- setup and steps -------------------------------------------------------------

    def setup(self, step: Step) -> None:
        defs = step.setup(self.ctx) if callable(step.setup) else step.setup
        plans = plan_defs(self.ctx, defs)
        for plan in plans:
            if plan.cgdef.name in self.persistent:
                raise ConfigError(f"step {self.ctx.current_step}: setup cgroup "
                                  f"{plan.cgdef.name!r} already exists (added by "
                                  "Op.add_cgroup); hint: give it another name")
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

    def end_step(self) -> None:
        """Judge and remove the step's setup cgroups."""
        for name in list(self.local):
            self.collect(name)
        while self.local:
            self._remove(self.local[-1])

    def finish(self) -> None:
        """After the last step: judge what op-spawned workers remain, remove op cgroups."""
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
        kill_and_remove(self.ctx, self.every_handle, self.persistent + self.local)

    # -- ops ---------------------------------------------------------------------------

    def apply(self, op: Op) -> None:
        cg = self.ctx.cgroups
        if isinstance(op, AddCgroup):
            cg.create(op.name)
            self.persistent.append(op.name)
            self.cpusets[op.name] = None
        elif isinstance(op, RemoveCgroup):
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
        elif isinstance(op, FreezeCgroup):
            cg.freeze(op.name)
            self.frozen.add(op.name)
        elif isinstance(op, UnfreezeCgroup):
            cg.unfreeze(op.name)
            self.frozen.discard(op.name)
        elif isinstance(op, CaptureCgroupProcs):
            self.captures[op.tag] = list(cg.procs(op.cgroup))
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
                  captures: dict[str, list[int]] | None = None) -> AssertResult:
    """Run `steps` in order (see the module docstring); one merged result.

    `captures`, when given, receives each `Op.capture_cgroup_procs` as tag -> pids.
    """
    steps = list(steps)
    validate_steps(ctx, steps)
    run = _Run(ctx, {} if captures is None else captures)
    deadline = time.monotonic() + ctx.duration
    try:
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

