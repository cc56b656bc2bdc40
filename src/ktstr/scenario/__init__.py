"""Scenario layer: what a test declares and how it runs.

`CpusetSpec` (cpusets relative to the topology), `TestTopology` (the CPUs, LLCs
and nodes a run has), `CgroupDef` (one cgroup and its workers), `Ctx` (what a
test body gets; `ctx.cgroups` is a `CgroupManager`), `execute_defs` (run defs
for the test's duration and judge them) and the custom-scenario helpers
`dfl_wl`, `setup_cgroups`, `collect_all`, `spawn_diverse`; steps: `HoldSpec`, `Op`,
`Step`, `Backdrop`, `execute_steps`.
"""

from ktstr.scenario.backdrop import Backdrop
from ktstr.scenario.cgroup_def import CgroupDef
from ktstr.scenario.cgroups import CgroupManager
from ktstr.scenario.cpuset import CpusetSpec, Disjoint, Exact, Llc, Numa, Overlap, Range
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.custom import collect_all, dfl_wl, setup_cgroups, spawn_diverse
from ktstr.scenario.execute import execute_defs
from ktstr.scenario.hold import HoldSpec
from ktstr.scenario.ops import Op
from ktstr.scenario.snapshot import Snapshot, SnapshotMap
from ktstr.scenario.step import Step
from ktstr.scenario.steps import execute_steps
from ktstr.scenario.topo import TestTopology

__all__ = [
    "Backdrop",
    "CgroupDef",
    "CgroupManager",
    "CpusetSpec",
    "Ctx",
    "Disjoint",
    "Exact",
    "HoldSpec",
    "Llc",
    "Numa",
    "Op",
    "Overlap",
    "Range",
    "Snapshot",
    "SnapshotMap",
    "Step",
    "TestTopology",
    "collect_all",
    "dfl_wl",
    "execute_defs",
    "execute_steps",
    "setup_cgroups",
    "spawn_diverse",
]
