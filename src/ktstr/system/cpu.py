"""CPU topology as the kernel reports it under /sys/devices/system.

Readers take `root` (the sysfs mount, `/sys` by default) so unit tests build a
fake tree. LLCs come from `cpu<N>/cache/index<M>/shared_cpu_list` of the
highest cache level each CPU has (level 3 on x86; level 2 where there is no L3);
NUMA nodes from `node/node<N>/cpulist` (those with memory from `node/has_memory`);
SMT siblings from
`cpu<N>/topology/thread_siblings_list`.

Not supported: CPU hotplug while a test runs (callers read once), hybrid CPUs
whose cores have different cache levels are grouped by what each CPU reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ktstr.system import fs
from ktstr.topology import parse_cpulist

SYS_ROOT = Path("/sys")


def _cpu_dir(root: Path, cpu: int) -> Path:
    return root / "devices" / "system" / "cpu" / f"cpu{cpu}"


def online_cpus(root: Path = SYS_ROOT) -> frozenset[int]:
    """`devices/system/cpu/online`."""
    return fs.read_cpulist(root / "devices" / "system" / "cpu" / "online")


def llc_index_dir(cpu: int, root: Path = SYS_ROOT) -> Path | None:
    """The `cache/index<M>` directory of `cpu`'s last-level cache (highest `level`)."""
    cache = _cpu_dir(root, cpu) / "cache"
    best: tuple[int, Path] | None = None
    if not cache.is_dir():
        return None
    for index in sorted(cache.glob("index*")):
        level_text = fs.read_optional(index / "level")
        if level_text is None or not level_text.strip().isdigit():
            continue
        level = int(level_text)
        if best is None or level > best[0]:
            best = (level, index)
    return best[1] if best else None


def llc_cpus(cpu: int, root: Path = SYS_ROOT) -> frozenset[int]:
    """CPUs sharing `cpu`'s last-level cache; just `{cpu}` when sysfs has no cache info."""
    index = llc_index_dir(cpu, root)
    if index is None:
        return frozenset({cpu})
    return fs.read_cpulist(index / "shared_cpu_list") | {cpu}


def llc_groups(root: Path = SYS_ROOT) -> list[frozenset[int]]:
    """The online CPUs grouped by last-level cache, ordered by lowest CPU.

    `shared_cpu_list` may name offline CPUs; they are dropped. A machine that
    reports no cache at all is one group (the kernel's own fallback: one LLC).
    """
    online = online_cpus(root)
    if all(llc_index_dir(cpu, root) is None for cpu in online):
        return [online] if online else []
    groups: set[frozenset[int]] = set()
    for cpu in online:
        groups.add(llc_cpus(cpu, root) & online)
    return sorted(groups, key=min)


def numa_nodes(root: Path = SYS_ROOT) -> dict[int, frozenset[int]]:
    """Node id -> its CPUs (`node/node<N>/cpulist`); memory-only nodes map to an empty set.

    A kernel without CONFIG_NUMA has no `node` directory: then every online CPU
    is node 0.
    """
    base = root / "devices" / "system" / "node"
    nodes: dict[int, frozenset[int]] = {}
    if base.is_dir():
        for entry in base.glob("node*"):
            suffix = entry.name[4:]
            if suffix.isdigit() and entry.is_dir():
                nodes[int(suffix)] = fs.read_cpulist(entry / "cpulist")
    if not nodes:
        return {0: online_cpus(root)}
    return dict(sorted(nodes.items()))


def memory_nodes(root: Path = SYS_ROOT) -> frozenset[int]:
    """Nodes that have memory (`node/has_memory`); {0} on a kernel without NUMA sysfs."""
    text = fs.read_optional(root / "devices" / "system" / "node" / "has_memory")
    return parse_cpulist(text) if text else frozenset({0})


def thread_siblings(cpu: int, root: Path = SYS_ROOT) -> frozenset[int]:
    """CPUs sharing `cpu`'s core (`topology/thread_siblings_list`), `cpu` included."""
    path = _cpu_dir(root, cpu) / "topology" / "thread_siblings_list"
    text = fs.read_optional(path)
    if text is None:
        return frozenset({cpu})
    return fs.read_cpulist(path) | {cpu}


@dataclass(frozen=True, slots=True)
class CpuIds:
    """The ids `topology/` gives one CPU (-1 where the file is missing)."""

    package: int
    die: int
    core: int


def cpu_ids(cpu: int, root: Path = SYS_ROOT) -> CpuIds:
    """`physical_package_id`, `die_id`, `core_id` of `cpu`: to check a VM's topology."""
    topo = _cpu_dir(root, cpu) / "topology"

    def one(name: str) -> int:
        text = fs.read_optional(topo / name)
        return int(text) if text is not None and text.strip().lstrip("-").isdigit() else -1

    return CpuIds(package=one("physical_package_id"), die=one("die_id"), core=one("core_id"))
