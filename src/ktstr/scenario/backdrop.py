"""`Backdrop`: the cgroups and ops a step sequence runs on top of.

A step's setup cgroups end with their step; a backdrop's live for the whole
`execute_steps(ctx, steps, backdrop=...)` call. Before step 1 (at
`ctx.current_step == 0`, the baseline) the backdrop's cgroups are created,
given their cpusets, their workers forked and started, then its ops applied.
Every step's ops may then name those cgroups (`Op.set_cpuset`,
`Op.freeze_cgroup`, `Op.move_all_tasks`, ...); their workers are judged after
the last step, as op-added cgroups are. A step's setup may not reuse a
backdrop name.

The value is frozen: `push_cgroup` and `extend_ops` return a new backdrop with
the def or ops APPENDED (unlike `Step.set_ops`, which replaces).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ktstr.errors import ConfigError
from ktstr.scenario.cgroup_def import CgroupDef
from ktstr.scenario.ops import Op


@dataclass(frozen=True, slots=True)
class Backdrop:
    """Persistent `cgroups` (CgroupDefs) and `ops` applied once before step 1."""

    cgroups: tuple[CgroupDef, ...] = ()
    ops: tuple[Op, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cgroups", tuple(self.cgroups))
        object.__setattr__(self, "ops", tuple(self.ops))
        seen: set[str] = set()
        for d in self.cgroups:
            if not isinstance(d, CgroupDef):
                raise ConfigError(f"Backdrop: {d!r} is not a CgroupDef; hint: e.g. "
                                  "Backdrop(cgroups=[CgroupDef('bg')])")
            if d.name in seen:
                raise ConfigError(f"Backdrop: cgroup {d.name!r} is declared twice; hint: give "
                                  "each backdrop CgroupDef its own name")
            seen.add(d.name)
        for op in self.ops:
            if not isinstance(op, Op):
                raise ConfigError(f"Backdrop: {op!r} is not an Op; hint: build ops with "
                                  "Op.add_cgroup(...), Op.set_cpuset(...), ...")

    @property
    def names(self) -> frozenset[str]:
        """The names of the backdrop's CgroupDefs (not of cgroups its ops add)."""
        return frozenset(d.name for d in self.cgroups)

    def push_cgroup(self, cgdef: CgroupDef) -> Backdrop:
        """A copy with `cgdef` appended to the persistent cgroups."""
        return Backdrop((*self.cgroups, cgdef), self.ops)

    def extend_ops(self, ops: Iterable[Op]) -> Backdrop:
        """A copy with `ops` APPENDED after the backdrop's ops."""
        return Backdrop(self.cgroups, (*self.ops, *ops))
