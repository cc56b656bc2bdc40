"""The CPU topology a test asks for: NUMA nodes, LLCs, cores, SMT threads.

`Topology` is a value shared by every layer: the VM layer turns it into a
qemu command line, the guest agent checks the guest sees exactly it, and the
scenario layer resolves cpusets against it. CPU numbering is the one qemu
gives with `-smp sockets=llcs,cores=cores,threads=threads`: the threads of a
core are adjacent, the cores of an LLC are adjacent, and LLC `i` holds CPUs
`[i*cores*threads, (i+1)*cores*threads)`. NUMA node `n` holds the LLCs
`[n*llcs/numa_nodes, (n+1)*llcs/numa_nodes)`; an LLC never spans two nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ktstr.errors import ConfigError
from ktstr.validators import is_int

_TOPO_RE = re.compile(r"^(\d+)n(\d+)l(\d+)c(\d+)t$")

#: Upper bound on vCPUs: qemu's q35 accepts 288; beyond a few dozen TCG is unusable anyway.
MAX_CPUS = 288


@dataclass(frozen=True, slots=True)
class CpuPlace:
    """Where one CPU sits in the topology."""

    cpu: int
    node: int
    llc: int
    core: int  # global core index
    thread: int  # SMT thread index within its core


@dataclass(frozen=True, slots=True)
class Topology:
    """`llcs` in total, `cores` per LLC, `threads` per core."""

    numa_nodes: int = 1
    llcs: int = 1
    cores: int = 2
    threads: int = 1

    def __post_init__(self) -> None:
        for field in ("numa_nodes", "llcs", "cores", "threads"):
            value = getattr(self, field)
            if not is_int(value) or value < 1:
                raise ConfigError(
                    f"topology {field}={value!r} is invalid: it must be an integer >= 1; "
                    f"hint: e.g. {field}=1")
        if self.llcs % self.numa_nodes:
            raise ConfigError(
                f"topology llcs={self.llcs} cannot be split over numa_nodes={self.numa_nodes}: "
                "an LLC may not span two NUMA nodes; hint: make llcs a multiple of numa_nodes")
        if self.cpus > MAX_CPUS:
            raise ConfigError(
                f"topology {self} has {self.cpus} CPUs, more than the {MAX_CPUS} a q35 VM "
                "can hold; hint: use fewer LLCs, cores or threads")

    @classmethod
    def parse(cls, text: str) -> Topology:
        """Parse the `<n>n<l>l<c>c<t>t` form, e.g. `1n2l2c1t`."""
        m = _TOPO_RE.match(text.strip())
        if not m:
            raise ConfigError(
                f"topology string {text!r} is not of the form <n>n<l>l<c>c<t>t; "
                "hint: e.g. 1n2l2c1t is 1 NUMA node, 2 LLCs, 2 cores per LLC, 1 thread per core")
        n, l_, c, t = (int(g) for g in m.groups())
        return cls(n, l_, c, t)

    def __str__(self) -> str:
        return f"{self.numa_nodes}n{self.llcs}l{self.cores}c{self.threads}t"

    @property
    def cpus(self) -> int:
        return self.llcs * self.cores * self.threads

    @property
    def llcs_per_node(self) -> int:
        return self.llcs // self.numa_nodes

    @property
    def cpus_per_llc(self) -> int:
        return self.cores * self.threads

    def place(self, cpu: int) -> CpuPlace:
        if not 0 <= cpu < self.cpus:
            raise ConfigError(f"cpu {cpu} does not exist in topology {self} (0-{self.cpus - 1})")
        llc = cpu // self.cpus_per_llc
        return CpuPlace(cpu=cpu, node=llc // self.llcs_per_node, llc=llc,
                        core=cpu // self.threads, thread=cpu % self.threads)

    def llc_cpus(self, llc: int) -> frozenset[int]:
        if not 0 <= llc < self.llcs:
            raise ConfigError(f"LLC {llc} does not exist in topology {self} (0-{self.llcs - 1})")
        base = llc * self.cpus_per_llc
        return frozenset(range(base, base + self.cpus_per_llc))

    def node_cpus(self, node: int) -> frozenset[int]:
        if not 0 <= node < self.numa_nodes:
            raise ConfigError(
                f"NUMA node {node} does not exist in topology {self} (0-{self.numa_nodes - 1})")
        per = self.llcs_per_node * self.cpus_per_llc
        return frozenset(range(node * per, (node + 1) * per))

    def core_siblings(self, cpu: int) -> frozenset[int]:
        base = self.place(cpu).core * self.threads
        return frozenset(range(base, base + self.threads))


def format_cpulist(cpus: frozenset[int] | set[int] | list[int]) -> str:
    """Render CPUs in the kernel's list format (`0-3,6`)."""
    out: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_cpulist(text: str) -> frozenset[int]:
    """Parse the kernel's list format (`0-3,6`, empty for none)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            cpus.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise ConfigError(f"CPU list {text!r} is malformed at {part!r}") from None
    return frozenset(cpus)
