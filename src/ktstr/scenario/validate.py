"""Checking a step list before anything runs (seed 004's rules).

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

from collections.abc import Sequence

from ktstr.errors import ConfigError
from ktstr.payloads.run import already_running, not_one
from ktstr.scenario.backdrop import Backdrop
from ktstr.scenario.ctx import Ctx, SchedulerControl
from ktstr.scenario.execute import plan_defs
from ktstr.scenario.ops import (
    MAX_WATCHES,
    AddCgroup,
    AttachScheduler,
    CaptureCgroupProcs,
    CaptureSnapshot,
    FreezeCgroup,
    KillPayload,
    MoveAllTasks,
    Op,
    RemoveCgroup,
    ReplaceScheduler,
    RunPayload,
    SchedulerOp,
    SetAffinity,
    SetCpuset,
    Spawn,
    UnfreezeCgroup,
    WaitPayload,
    WatchSnapshot,
)
from ktstr.scenario.snapshot import SnapshotControl
from ktstr.scenario.step import Step


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
        self.watched: set[str] = set()

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
            if isinstance(op, CaptureSnapshot | WatchSnapshot):
                snapshot_control(ctx, op)
            if isinstance(op, WatchSnapshot):
                self.watched.add(op.symbol)
                if len(self.watched) > MAX_WATCHES:
                    raise ConfigError(
                        f"{where}: {op!r} would be watch number {len(self.watched)} of the "
                        f"scenario ({', '.join(sorted(self.watched))}); at most {MAX_WATCHES} "
                        "are allowed (a fourth debug slot watches the scheduler's error "
                        "exit); hint: watch fewer symbols")
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
    """Apply the payload rules of ktstr.payloads.run to `running`, raising where broken."""
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


def scheduler_slot(ctx: Ctx, op: SchedulerOp) -> SchedulerControl:
    if ctx.scheduler is None:
        raise ConfigError(f"{op!r} needs the run's scheduler slot, which this Ctx lacks; "
                          "hint: scheduler ops run in a ktstr test (a ctx from the guest agent)")
    return ctx.scheduler


def snapshot_control(ctx: Ctx, op: CaptureSnapshot | WatchSnapshot) -> SnapshotControl:
    if ctx.snapshot_control is None:
        raise ConfigError(f"{op!r} needs a host that takes captures, which this Ctx lacks; "
                          "hint: snapshot ops run in a ktstr test (a ctx from the guest agent)")
    return ctx.snapshot_control


def _check_scheduler_op(where: str, ctx: Ctx, op: SchedulerOp) -> None:
    slot = scheduler_slot(ctx, op)
    if isinstance(op, AttachScheduler | ReplaceScheduler) and op.scheduler.name not in slot.staged:
        staged = ", ".join(sorted(slot.staged)) or "none"
        raise ConfigError(f"{where}: {op!r}: {op.scheduler.name} is not staged for this test "
                          f"(staged: {staged}); hint: add it to @ktstr_test("
                          "staged_schedulers=[...]) so that it is found before the VM boots")
