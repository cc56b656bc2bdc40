"""ktstr.system.cpu on fake sysfs trees, and against the live host's own counts."""

from __future__ import annotations

import os
from pathlib import Path

from ktstr.system import cpu
from ktstr.topology import Topology, format_cpulist


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def fake_sysfs(root: Path, topo: Topology, *, l3: bool = True, nodes: bool = True,
               online: str | None = None) -> Path:
    """A /sys tree as a VM with `topo` shows it: L1d/L1i/L2 per core, L3 per LLC."""
    base = root / "devices" / "system"
    write(base / "cpu" / "online", online or f"0-{topo.cpus - 1}")
    for c in range(topo.cpus):
        place = topo.place(c)
        cdir = base / "cpu" / f"cpu{c}"
        core = format_cpulist(topo.core_siblings(c))
        caches = [(1, core), (1, core), (2, core)]
        if l3:
            caches.append((3, format_cpulist(topo.llc_cpus(place.llc))))
        for i, (level, shared) in enumerate(caches):
            write(cdir / "cache" / f"index{i}" / "level", str(level))
            write(cdir / "cache" / f"index{i}" / "shared_cpu_list", shared)
        write(cdir / "topology" / "thread_siblings_list", core)
        write(cdir / "topology" / "core_id", str(place.core % topo.cores))
        write(cdir / "topology" / "physical_package_id", str(place.llc))
        write(cdir / "topology" / "die_id", "0")
    if nodes:
        for n in range(topo.numa_nodes):
            write(base / "node" / f"node{n}" / "cpulist", format_cpulist(topo.node_cpus(n)))
    return root


def test_llc_groups_come_from_level3_shared_cpu_list(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, Topology(2, 4, 2, 2))
    groups = cpu.llc_groups(root)
    assert groups == [frozenset(range(i * 4, i * 4 + 4)) for i in range(4)]
    assert cpu.llc_index_dir(5, root) == root / "devices/system/cpu/cpu5/cache/index3"


def test_llc_groups_fall_back_to_highest_level_without_l3(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, Topology(1, 1, 2, 2), l3=False)
    # the highest level is L2, shared per core here: one group per core
    assert cpu.llc_groups(root) == [frozenset({0, 1}), frozenset({2, 3})]


def test_llc_groups_drop_offline_cpus(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, Topology(1, 2, 2, 1), online="0-2")
    assert cpu.online_cpus(root) == frozenset({0, 1, 2})
    assert cpu.llc_groups(root) == [frozenset({0, 1}), frozenset({2})]


def test_llc_groups_without_cache_info_is_one_group(tmp_path: Path) -> None:
    write(tmp_path / "devices/system/cpu/online", "0-3")
    for c in range(4):
        (tmp_path / f"devices/system/cpu/cpu{c}").mkdir(parents=True)
    assert cpu.llc_groups(tmp_path) == [frozenset(range(4))]
    assert cpu.llc_cpus(2, tmp_path) == frozenset({2})


def test_numa_nodes_read_node_cpulists(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, Topology(2, 2, 2, 1))
    write(root / "devices/system/node/node2/cpulist", "")  # a memory-only node
    assert cpu.numa_nodes(root) == {0: frozenset({0, 1}), 1: frozenset({2, 3}),
                                    2: frozenset()}


def test_numa_nodes_without_node_dir_is_node_zero(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, Topology(1, 2, 2, 1), nodes=False)
    assert cpu.numa_nodes(root) == {0: frozenset(range(4))}


def test_thread_siblings_and_ids(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, Topology(1, 2, 2, 2))
    assert cpu.thread_siblings(5, root) == frozenset({4, 5})
    assert cpu.cpu_ids(5, root) == cpu.CpuIds(package=1, die=0, core=0)
    (root / "devices/system/cpu/cpu5/topology/die_id").unlink()
    assert cpu.cpu_ids(5, root).die == -1


def test_live_online_cpus_match_sysconf() -> None:
    online = cpu.online_cpus()
    assert len(online) == os.sysconf("SC_NPROCESSORS_ONLN")
    assert os.sched_getaffinity(0) <= online
    groups = cpu.llc_groups()
    assert frozenset().union(*groups) == online
    assert sum(len(g) for g in groups) == len(online)  # a partition
