"""Check that the CPUs the guest kernel sees are exactly the topology asked for.

A scheduler test on the wrong topology is worse than no test, so a mismatch
fails loudly before the body runs. What the kernel reports (online CPUs, LLC
groups from the cache sysfs, NUMA node CPU lists, SMT sibling lists) is
compared with `Topology`'s own numbering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktstr.system import cpu
from ktstr.topology import Topology, format_cpulist


@dataclass(frozen=True, slots=True)
class TopologyView:
    """What the guest sees, as CPU lists."""

    online: frozenset[int]
    llcs: list[frozenset[int]]
    nodes: dict[int, frozenset[int]]
    siblings: dict[int, frozenset[int]] = field(default_factory=dict)

    @classmethod
    def read(cls, sys_root: Path = Path("/sys")) -> TopologyView:
        online = cpu.online_cpus(sys_root)
        return cls(online=online, llcs=cpu.llc_groups(sys_root),
                   nodes=cpu.numa_nodes(sys_root),
                   siblings={c: cpu.thread_siblings(c, sys_root) for c in sorted(online)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "online": format_cpulist(self.online),
            "llcs": [format_cpulist(g) for g in _ordered(self.llcs)],
            "nodes": {str(n): format_cpulist(c) for n, c in sorted(self.nodes.items())},
        }


def _ordered(groups: list[frozenset[int]]) -> list[frozenset[int]]:
    return sorted(groups, key=lambda g: min(g) if g else -1)


def compare(want: Topology, seen: TopologyView) -> list[str]:
    """Every way `seen` differs from `want`, one line each; empty when they agree."""
    problems: list[str] = []
    all_cpus = frozenset(range(want.cpus))
    if seen.online != all_cpus:
        problems.append(f"online CPUs are {format_cpulist(seen.online) or 'none'}, "
                        f"expected {format_cpulist(all_cpus)}")
    want_llcs = [want.llc_cpus(i) for i in range(want.llcs)]
    if _ordered(seen.llcs) != want_llcs:
        problems.append("LLC groups are " + " ".join(
            f"[{format_cpulist(g)}]" for g in _ordered(seen.llcs)) + ", expected " + " ".join(
            f"[{format_cpulist(g)}]" for g in want_llcs))
    want_nodes = {n: want.node_cpus(n) for n in range(want.numa_nodes)}
    seen_nodes = {n: c for n, c in seen.nodes.items() if c}
    if seen_nodes != want_nodes:
        problems.append("NUMA nodes are " + ", ".join(
            f"node{n}=[{format_cpulist(c)}]" for n, c in sorted(seen_nodes.items()))
            + ", expected " + ", ".join(
            f"node{n}=[{format_cpulist(c)}]" for n, c in sorted(want_nodes.items())))
    for c, sib in sorted(seen.siblings.items()):
        if c < want.cpus and sib != want.core_siblings(c):
            problems.append(f"cpu{c} SMT siblings are [{format_cpulist(sib)}], expected "
                            f"[{format_cpulist(want.core_siblings(c))}]")
            break
    return problems
