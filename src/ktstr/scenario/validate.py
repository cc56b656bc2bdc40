"""Checking a step list before anything runs.

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

Each op's rule is its own (`Op.check`, `Op.check_payloads` in
ktstr.scenario.ops); this module walks the steps in order and says where the
walk is (`DryRun`, dry_run.py). The payload rules are checked per step after
the other rules of that step.
"""

from __future__ import annotations

from collections.abc import Sequence

from ktstr.errors import ConfigError
from ktstr.scenario.backdrop import Backdrop
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.dry_run import DryRun
from ktstr.scenario.execute import plan_defs
from ktstr.scenario.ops import Op
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
    dry = DryRun(ctx)
    payloads: list[tuple[str, str]] = []  # (name, cgroup) of payloads running here
    if backdrop is not None:
        plan_defs(ctx, backdrop.cgroups)  # cpusets, affinities on this topology
        dry.live |= backdrop.names
        _check_ops(dry, backdrop.ops, "backdrop", set(dry.live), set(), loop=False)
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
            clash = sorted(local & dry.live)
            if clash:
                raise ConfigError(f"{where}: setup cgroup {clash[0]!r} already exists (a "
                                  "backdrop cgroup, or added by an earlier Op.add_cgroup); "
                                  "hint: give it another name or remove it first with "
                                  "Op.remove_cgroup")
        visible: set[str] | None = None
        if local is not None:
            visible = dry.live | local if step.hold.is_loop else set(dry.live)
        _check_ops(dry, step.ops, where, visible, local or set(), step.hold.is_loop)
        if step.hold.is_loop:  # the ops run again on what their first pass left
            _check_ops(dry, step.ops, f"{where} (the loop's second pass)", visible,
                       local or set(), loop=True, again=True)
        dry.frozen &= dry.live  # a step's setup cgroups end with it, frozen or not
        # A loop step applies its ops again: a second pass shows a payload started twice.
        for _ in range(2 if step.hold.is_loop else 1):
            _check_payload_ops(where, step.ops, payloads)
        if local is not None and not step.hold.is_loop:
            payloads[:] = [p for p in payloads if p[1] not in local]


def _check_ops(dry: DryRun, ops: Sequence[Op], where: str, visible: set[str] | None,
               local: set[str], loop: bool, again: bool = False) -> None:
    """One pass over `ops`: each checks its rule on `dry` (see `DryRun.begin`)."""
    dry.begin(where, visible, local, loop, again)
    for op in ops:
        op.check(dry)


def _check_payload_ops(where: str, ops: Sequence[Op], running: list[tuple[str, str]]) -> None:
    """Walk `ops` over `running` (see `Op.check_payloads`); errors name `where`."""
    for op in ops:
        try:
            op.check_payloads(running)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
