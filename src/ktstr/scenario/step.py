"""`Step`: one phase of a scenario, ops + setup + hold.

`setup` is a list of CgroupDefs or a function `(ctx) -> defs`, called when
the step starts (so it can size the cgroups on `ctx.topo`). A step's hold is validated
when the step is built, so a bad step list at module level fails on the host,
before any boot. `execute_steps` (steps.py) runs a list of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import overload

from ktstr.errors import ConfigError
from ktstr.payloads import Payload
from ktstr.scenario.cgroup_def import CgroupDef
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.hold import HoldSpec
from ktstr.scenario.ops import Op

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
        """A copy with `ops` REPLACING this step's ops (`Backdrop.extend_ops` appends)."""
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
