"""The ops on where a cgroup's tasks may run: cpusets and CPU affinity.

A `CpusetSpec` is resolved on `ctx.topo` before anything runs, so a spec the
topology cannot satisfy fails then. The scenario remembers each cgroup's
cpuset (None: all CPUs) to judge its workers against it; `Op.swap_cpusets`
exchanges two of them. `Op.set_affinity` pins the tasks in the cgroup at that
moment, each thread of them, and leaves the cgroup's cpuset as it is.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ktstr.errors import ConfigError
from ktstr.scenario.cpuset import CpusetSpec
from ktstr.scenario.ops import Op, check_cgroup_name

if TYPE_CHECKING:
    from ktstr.scenario.dry_run import DryRun
    from ktstr.scenario.live import LiveScenario


@dataclass(frozen=True, slots=True)
class SetCpuset(Op):
    """`Op.set_cpuset`: a cgroup restricted to `spec`, resolved on the run's topology."""

    cgroup: str
    spec: CpusetSpec

    def __post_init__(self) -> None:
        check_cgroup_name("Op.set_cpuset:", self.cgroup)
        if not isinstance(self.spec, CpusetSpec):
            raise ConfigError(f"Op.set_cpuset: {self.spec!r} is not a CpusetSpec; hint: e.g. "
                              "CpusetSpec.llc(0)")

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)

    def check(self, dry: DryRun) -> None:
        self.spec.resolve(dry.ctx.topo)
        dry.require_names(self)

    def apply(self, live: LiveScenario) -> None:
        cpus = live.ctx.cgroups.set_cpuset(self.cgroup, self.spec.resolve(live.ctx.topo))
        live.cpusets[self.cgroup] = cpus


@dataclass(frozen=True, slots=True)
class ClearCpuset(Op):
    """`Op.clear_cpuset`: a cgroup allowed every CPU again."""

    cgroup: str

    def __post_init__(self) -> None:
        check_cgroup_name("Op.clear_cpuset:", self.cgroup)

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)

    def apply(self, live: LiveScenario) -> None:
        live.ctx.cgroups.clear_cpuset(self.cgroup)
        live.cpusets[self.cgroup] = None


@dataclass(frozen=True, slots=True)
class SwapCpusets(Op):
    """`Op.swap_cpusets`: cgroups `a` and `b` exchange their cpusets."""

    a: str
    b: str

    def __post_init__(self) -> None:
        check_cgroup_name("Op.swap_cpusets:", self.a)
        check_cgroup_name("Op.swap_cpusets:", self.b)
        if self.a == self.b:
            raise ConfigError(f"Op.swap_cpusets({self.a!r}, {self.b!r}) swaps a cgroup with "
                              "itself, which changes nothing; hint: name two cgroups")

    def names(self) -> tuple[str, ...]:
        return (self.a, self.b)

    def apply(self, live: LiveScenario) -> None:
        a, b = live.cpusets.get(self.a), live.cpusets.get(self.b)
        for name, cpus in ((self.a, b), (self.b, a)):
            if cpus is None:
                live.ctx.cgroups.clear_cpuset(name)
            else:
                live.ctx.cgroups.set_cpuset(name, cpus)
            live.cpusets[name] = cpus


@dataclass(frozen=True, slots=True)
class SetAffinity(Op):
    """`Op.set_affinity`: the CPU affinity of every task now in a cgroup set to `spec`."""

    cgroup: str
    spec: CpusetSpec

    def __post_init__(self) -> None:
        check_cgroup_name("Op.set_affinity:", self.cgroup)
        if not isinstance(self.spec, CpusetSpec):
            raise ConfigError(f"Op.set_affinity: {self.spec!r} is not a CpusetSpec; hint: "
                              "e.g. CpusetSpec.exact([0])")

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)

    def check(self, dry: DryRun) -> None:
        self.spec.resolve(dry.ctx.topo)
        dry.require_names(self)

    def apply(self, live: LiveScenario) -> None:
        cpus = self.spec.resolve(live.ctx.topo)
        for tid in live.ctx.cgroups.threads(self.cgroup):  # a pcomm leader's threads too
            set_affinity(tid, cpus)


def set_affinity(pid: int, cpus: frozenset[int]) -> None:
    """Pin `pid` to `cpus`; a task that already exited is skipped."""
    with contextlib.suppress(ProcessLookupError):
        os.sched_setaffinity(pid, cpus)
