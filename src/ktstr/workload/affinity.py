"""`AffinityIntent`: a per-worker CPU mask described against the topology.

A `CpusetSpec` affinity gives every worker of a cgroup the same mask. An
intent gives each worker its own, chosen from the machine's real topology and
the cgroup's CPUs when the scenario spawns the workers, so the same test
exercises the same kernel path on every topology of a gauntlet:

- `single_cpu()`: each worker on exactly one of the cgroup's CPUs, workers
  spread round-robin over them. `nr_cpus_allowed == 1` is the case many
  sched_ext schedulers special-case (a task that can only go one place is
  dispatched straight to that CPU's local DSQ).
- `llc_aligned()`: each worker on every CPU of one LLC (within the cgroup's
  CPUs), round-robin over the LLCs the cgroup touches: wake-affine and
  LLC-local idle selection without cross-LLC migrations.
- `smt_sibling_pair()`: each worker on the SMT siblings of one core (only
  cores whose siblings all lie in the cgroup's CPUs), round-robin over those
  cores. A topology without SMT is a ConfigError.
- `cross_cgroup()`: every worker asks for every CPU of the machine, beyond its
  cgroup's cpuset. The kernel clips the mask it runs with (`Cpus_allowed`) to
  the cpuset but keeps the request (`task_struct.user_cpus_ptr`, saved by every
  sched_setaffinity since Linux 6.2, "sched: Always preserve the user requested
  cpumask"): when the cpuset later changes (`Op.set_cpuset`, `Op.clear_cpuset`)
  the kernel recomputes the mask as new cpuset & request, so it widens or
  moves with the cpuset, while a worker pinned to explicit CPUs stays on them
  (tests/vm/test_affinity_intents.py checks both on the cached kernel).

Intents need scenario context (a topology, the cgroup's CPUs, the worker
count): `CgroupDef(affinity=AffinityIntent.single_cpu())` resolves them at
spawn; a custom scenario calls `intent.resolve(ctx.topo, cpus, workers)` and
passes the masks as `WorkloadConfig(affinity=masks)`. `WorkloadHandle.spawn`
rejects a `WorkloadConfig` that still holds an intent.

An intent reads the machine's topology through `CpuTopology`, the shape it needs
(`all_cpus`, `llc_cpusets`, `core_cpusets`, `node_cpusets`, `threads_per_core`,
`describe()`); `ktstr.scenario.topo.TestTopology` has that shape, and the workload
layer does not import the scenario layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ktstr.errors import ConfigError
from ktstr.topology import Topology, format_cpulist
from ktstr.validators import is_int

Masks = tuple[frozenset[int], ...]


class CpuTopology(Protocol):
    """The CPUs of the machine by LLC, SMT core and NUMA node, as an intent reads them."""

    @property
    def all_cpus(self) -> frozenset[int]: ...
    @property
    def llc_cpusets(self) -> tuple[frozenset[int], ...]: ...
    @property
    def core_cpusets(self) -> tuple[frozenset[int], ...]: ...
    @property
    def node_cpusets(self) -> tuple[tuple[int, frozenset[int]], ...]: ...
    @property
    def threads_per_core(self) -> int: ...
    def describe(self) -> str: ...


def topology_name(topo: CpuTopology) -> str:
    """`1n2l2c2t` when the topology is uniform (what `@ktstr_test` asks for), else
    the `describe()` line."""
    nodes, llcs, cores = len(topo.node_cpusets), len(topo.llc_cpusets), len(topo.core_cpusets)
    threads = {len(c) for c in topo.core_cpusets}
    if nodes and llcs and len(threads) == 1 and cores % llcs == 0:
        return f"{nodes}n{llcs}l{cores // llcs}c{threads.pop()}t"
    return topo.describe()


class AffinityIntent:
    """A rule that gives each worker of a cgroup its own CPU mask. Subclasses are the
    variants; build them with the `AffinityIntent.single_cpu/llc_aligned/
    smt_sibling_pair/cross_cgroup` constructors."""

    __slots__ = ()

    def resolve(self, topo: CpuTopology, cpus: Iterable[int] | None, workers: int) -> Masks:
        """One mask per worker (index order) on `topo` for a cgroup on `cpus` (None: every
        CPU of `topo`); raises ConfigError when the intent cannot be met there."""
        if not is_int(workers) or workers < 1:
            raise ConfigError(f"affinity {self}: workers={workers!r} is invalid: it must be "
                              "an integer >= 1")
        allowed = topo.all_cpus if cpus is None else frozenset(cpus) & topo.all_cpus
        if not allowed:
            raise ConfigError(f"affinity {self}: the cgroup's CPUs "
                              f"{format_cpulist(frozenset(cpus or ()))} are not CPUs of this "
                              f"topology ({format_cpulist(topo.all_cpus)}); hint: resolve the "
                              "cgroup's cpuset on the same topology")
        self.check_topology(topo)
        choices = self._choices(topo, allowed)
        return tuple(choices[i % len(choices)] for i in range(workers))

    def check_topology(self, topo: CpuTopology | Topology) -> None:
        """Raise ConfigError when no cpuset of `topo` can satisfy this intent (needs no
        cgroup: usable on a requested `Topology` before a VM boots)."""

    def _choices(self, topo: CpuTopology, cpus: frozenset[int]) -> list[frozenset[int]]:
        raise NotImplementedError

    @staticmethod
    def single_cpu() -> SingleCpu:
        return SingleCpu()

    @staticmethod
    def llc_aligned() -> LlcAligned:
        return LlcAligned()

    @staticmethod
    def smt_sibling_pair() -> SmtSiblingPair:
        return SmtSiblingPair()

    @staticmethod
    def cross_cgroup() -> CrossCgroup:
        return CrossCgroup()


@dataclass(frozen=True, slots=True)
class SingleCpu(AffinityIntent):
    """Each worker on one CPU of the cgroup, round-robin in CPU order."""

    def __str__(self) -> str:
        return "single_cpu()"

    def _choices(self, topo: CpuTopology, cpus: frozenset[int]) -> list[frozenset[int]]:
        return [frozenset({c}) for c in sorted(cpus)]


@dataclass(frozen=True, slots=True)
class LlcAligned(AffinityIntent):
    """Each worker on the cgroup's CPUs of one LLC, round-robin over the LLCs in order."""

    def __str__(self) -> str:
        return "llc_aligned()"

    def _choices(self, topo: CpuTopology, cpus: frozenset[int]) -> list[frozenset[int]]:
        return [llc & cpus for llc in topo.llc_cpusets if llc & cpus]


@dataclass(frozen=True, slots=True)
class SmtSiblingPair(AffinityIntent):
    """Each worker on all SMT siblings of one core lying wholly in the cgroup's CPUs."""

    def __str__(self) -> str:
        return "smt_sibling_pair()"

    def check_topology(self, topo: CpuTopology | Topology) -> None:
        if isinstance(topo, Topology):
            threads, name = topo.threads, str(topo)
        else:
            threads, name = topo.threads_per_core, topology_name(topo)
        if threads < 2:
            raise ConfigError(f"affinity {self} needs SMT, but topology {name} has one "
                              "thread per core; hint: run it with threads=2 in @ktstr_test")

    def _choices(self, topo: CpuTopology, cpus: frozenset[int]) -> list[frozenset[int]]:
        cores = [core for core in topo.core_cpusets if len(core) > 1 and core <= cpus]
        if not cores:
            raise ConfigError(f"affinity {self}: the cgroup's CPUs {format_cpulist(cpus)} "
                              "hold no whole core (its SMT siblings are "
                              + " | ".join(format_cpulist(c) for c in topo.core_cpusets
                                           if c & cpus)
                              + "); hint: give the cgroup a cpuset of whole cores, e.g. "
                              "CpusetSpec.llc(0)")
        return cores


@dataclass(frozen=True, slots=True)
class CrossCgroup(AffinityIntent):
    """Every worker asks for every CPU of the machine; the cpuset clips what it gets."""

    def __str__(self) -> str:
        return "cross_cgroup()"

    def _choices(self, topo: CpuTopology, cpus: frozenset[int]) -> list[frozenset[int]]:
        return [topo.all_cpus]
