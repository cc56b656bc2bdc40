"""The op hooks: every variant has its constructor, check and effect, and an op written
outside ktstr runs through execute_steps, which knows no variant."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest
import test_scenario_steps as fakes

from ktstr import Ctx, HoldSpec, Op, Step, execute_steps
from ktstr.errors import ConfigError
from ktstr.scenario import ops
from ktstr.scenario.dry_run import DryRun
from ktstr.scenario.live import LiveScenario

ctx, log, clock = fakes.ctx, fakes.log, fakes.clock


def _variants(cls: type[Op] = Op) -> list[type[Op]]:
    """The op classes ktstr defines (a slotted dataclass replaces the class it decorates:
    only the one its module holds counts)."""
    found = []
    for sub in cls.__subclasses__():
        if (dataclasses.is_dataclass(sub) and sub.__module__.startswith("ktstr.")
                and getattr(sys.modules[sub.__module__], sub.__name__, None) is sub):
            found.append(sub)
        found.extend(_variants(sub))
    return found


def test_every_variant_is_exported_and_applies_itself() -> None:
    variants = _variants()
    constructors = [n for n, v in vars(Op).items() if isinstance(v, staticmethod)]
    assert len(variants) == len(constructors) == 21
    for cls in variants:
        assert getattr(ops, cls.__name__) is cls
        assert cls.__module__.startswith("ktstr.scenario.ops.")
        assert (cls.apply is not Op.apply
                or getattr(cls, "switch", None) is not None), cls.__name__


def test_max_watches_keeps_its_public_spelling() -> None:
    assert ops.MAX_WATCHES == 3


@dataclasses.dataclass(frozen=True, slots=True)
class Mark(Op):
    """An op the scenario package has never heard of."""

    cgroup: str

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)

    def check(self, dry: DryRun) -> None:
        if self.cgroup == "forbidden":
            raise ConfigError(f"{dry.where}: Mark refuses {self.cgroup!r}")
        dry.require_names(self)

    def apply(self, live: LiveScenario) -> None:
        live.captures[f"mark_{live.ctx.current_step}"] = [len(live.persistent)]


def test_an_op_from_outside_runs_through_its_own_hooks(ctx: Ctx) -> None:
    captures: dict[str, list[int]] = {}
    execute_steps(ctx, [Step(ops=[Op.add_cgroup("a"), Mark("a")], hold=HoldSpec.fixed(0))],
                  captures=captures)
    assert captures == {"mark_1": [1]}


@pytest.mark.parametrize(("op", "match"), [
    (Mark("forbidden"), r"^step 1: Mark refuses 'forbidden'"),
    (Mark("ghost"), r"^step 1: Mark\(cgroup='ghost'\) refers to cgroup 'ghost', which does "
                    r"not exist"),
])
def test_an_op_from_outside_is_checked_before_anything_runs(ctx: Ctx, log: list[Any],
                                                           op: Op, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        execute_steps(ctx, [Step.with_op(op, HoldSpec.fixed(0))])
    assert log == []
