"""`TestTopology`: the CPUs, LLCs and NUMA nodes a scenario runs on.

Built from the live system (`from_system`, read through `ktstr.system.cpu`) in
the guest, or from a requested `ktstr.topology.Topology` (`from_topology`) for
unit tests and for checking a scenario before a VM boots. The two agree when
the VM really has the requested topology; `mismatches()` lists where they do
not, so the guest agent can fail loudly on a wrong VM.

LLCs are numbered by their lowest CPU (LLC 0 holds CPU 0); NUMA nodes keep the
kernel's ids. `cpus`, `llcs` and `numa_nodes` are counts, as in `Topology`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ktstr.errors import ConfigError
from ktstr.system import cpu as sys_cpu
from ktstr.topology import Topology, format_cpulist


@dataclass(frozen=True, slots=True)
class TestTopology:
    """CPU sets of a machine: LLC groups, NUMA nodes, SMT sibling groups."""

    __test__ = False  # not a pytest test class despite the name

    all_cpus: frozenset[int]
    llc_cpusets: tuple[frozenset[int], ...]  # index = LLC number, ordered by lowest CPU
    node_cpusets: tuple[tuple[int, frozenset[int]], ...]  # (node id, CPUs), by node id
    core_cpusets: tuple[frozenset[int], ...]  # SMT sibling groups, ordered by lowest CPU

    def __post_init__(self) -> None:
        if not self.all_cpus:
            raise ConfigError("a topology without CPUs is invalid; hint: check "
                              "/sys/devices/system/cpu/online")

    @classmethod
    def from_topology(cls, topo: Topology) -> TestTopology:
        """What a VM with exactly `topo` shows its guest (see `ktstr.topology`)."""
        cpus = frozenset(range(topo.cpus))
        llcs = tuple(topo.llc_cpus(i) for i in range(topo.llcs))
        nodes = tuple((n, topo.node_cpus(n)) for n in range(topo.numa_nodes))
        cores = tuple(sorted({topo.core_siblings(c) for c in cpus}, key=min))
        return cls(cpus, llcs, nodes, cores)

    @classmethod
    def from_system(cls, sys_root: Path = Path("/sys")) -> TestTopology:
        """Read the online CPUs, LLCs, nodes and SMT siblings from sysfs at `sys_root`."""
        online = sys_cpu.online_cpus(sys_root)
        llcs = tuple(sys_cpu.llc_groups(sys_root))
        nodes = tuple((n, cpus & online) for n, cpus in sys_cpu.numa_nodes(sys_root).items()
                      if cpus & online)
        cores = tuple(sorted({sys_cpu.thread_siblings(c, sys_root) & online for c in online},
                             key=min))
        return cls(online, llcs, nodes, cores)

    # -- counts --------------------------------------------------------------

    @property
    def cpus(self) -> int:
        return len(self.all_cpus)

    @property
    def llcs(self) -> int:
        return len(self.llc_cpusets)

    @property
    def numa_nodes(self) -> int:
        return len(self.node_cpusets)

    @property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(n for n, _ in self.node_cpusets)

    @property
    def threads_per_core(self) -> int:
        return max(len(c) for c in self.core_cpusets) if self.core_cpusets else 1

    # -- CPU sets ------------------------------------------------------------

    @property
    def usable_cpus(self) -> tuple[int, ...]:
        """CPUs for workload placement, sorted: all but the last when there are more
        than 2, which stays for the root cgroup (agent, scheduler), as ktstr does."""
        ordered = tuple(sorted(self.all_cpus))
        return ordered[:-1] if len(ordered) > 2 else ordered

    @property
    def usable_cpuset(self) -> frozenset[int]:
        return frozenset(self.usable_cpus)

    def llc_aligned_cpuset(self, llc: int) -> frozenset[int]:
        """The CPUs of LLC number `llc`."""
        if not 0 <= llc < self.llcs:
            raise ConfigError(f"LLC {llc} does not exist: this topology has {self.llcs} "
                              f"LLC(s) (0-{self.llcs - 1}); hint: pick an LLC index below "
                              f"{self.llcs} or ask for more llcs in @ktstr_test")
        return self.llc_cpusets[llc]

    def numa_cpuset(self, node: int) -> frozenset[int]:
        """The CPUs of NUMA node `node` (the kernel's node id)."""
        for n, cpus in self.node_cpusets:
            if n == node:
                return cpus
        raise ConfigError(f"NUMA node {node} does not exist: this topology has node(s) "
                          f"{list(self.node_ids)}; hint: pick one of those or ask for more "
                          "numa_nodes in @ktstr_test")

    def smt_siblings(self, cpu: int) -> frozenset[int]:
        """The CPUs sharing `cpu`'s core, `cpu` included."""
        for core in self.core_cpusets:
            if cpu in core:
                return core
        if cpu in self.all_cpus:
            return frozenset({cpu})
        raise ConfigError(f"CPU {cpu} does not exist: this topology has CPUs "
                          f"{format_cpulist(self.all_cpus)}")

    def llc_of(self, cpu: int) -> int:
        """The LLC number holding `cpu`."""
        for i, cpus in enumerate(self.llc_cpusets):
            if cpu in cpus:
                return i
        raise ConfigError(f"CPU {cpu} is in no LLC of this topology "
                          f"({format_cpulist(self.all_cpus)})")

    # -- comparison ----------------------------------------------------------

    def describe(self) -> str:
        """One line: `cpus 0-3; llcs 0-1 | 2-3; nodes 0:0-3; cores 0 | 1 | 2 | 3`."""
        llcs = " | ".join(format_cpulist(c) for c in self.llc_cpusets)
        nodes = " ".join(f"{n}:{format_cpulist(c)}" for n, c in self.node_cpusets)
        cores = " | ".join(format_cpulist(c) for c in self.core_cpusets)
        return f"cpus {format_cpulist(self.all_cpus)}; llcs {llcs}; nodes {nodes}; cores {cores}"

    def mismatches(self, expected: Topology) -> list[str]:
        """How this (observed) topology differs from `expected`; empty when it matches."""
        want = TestTopology.from_topology(expected)
        out: list[str] = []
        pairs = (("CPUs", format_cpulist(want.all_cpus), format_cpulist(self.all_cpus)),
                 ("LLC groups", " | ".join(format_cpulist(c) for c in want.llc_cpusets),
                  " | ".join(format_cpulist(c) for c in self.llc_cpusets)),
                 ("NUMA nodes", " ".join(f"{n}:{format_cpulist(c)}" for n, c in want.node_cpusets),
                  " ".join(f"{n}:{format_cpulist(c)}" for n, c in self.node_cpusets)),
                 ("SMT siblings", " | ".join(format_cpulist(c) for c in want.core_cpusets),
                  " | ".join(format_cpulist(c) for c in self.core_cpusets)))
        for what, exp, got in pairs:
            if exp != got:
                out.append(f"{what}: expected {exp} for {expected}, found {got}")
        return out
