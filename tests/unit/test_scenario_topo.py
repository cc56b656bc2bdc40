"""TestTopology from a requested Topology and from (fake and live) sysfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_system_cpu import fake_sysfs, write  # type: ignore[import-not-found]  # same dir

from ktstr.errors import ConfigError
from ktstr.scenario import TestTopology
from ktstr.topology import Topology


def test_from_topology_two_nodes_with_smt() -> None:
    t = TestTopology.from_topology(Topology(2, 4, 2, 2))
    assert (t.cpus, t.llcs, t.numa_nodes, t.threads_per_core) == (16, 4, 2, 2)
    assert t.all_cpus == frozenset(range(16))
    assert t.llc_aligned_cpuset(2) == frozenset(range(8, 12))
    assert t.numa_cpuset(1) == frozenset(range(8, 16))
    assert t.smt_siblings(5) == frozenset({4, 5})
    assert t.llc_of(13) == 3
    assert t.usable_cpus == tuple(range(15))


def test_small_topologies_keep_every_cpu_usable() -> None:
    t = TestTopology.from_topology(Topology(1, 1, 2, 1))
    assert t.usable_cpus == (0, 1)
    assert t.smt_siblings(1) == frozenset({1})


@pytest.mark.parametrize("text", ["1n2l2c1t", "2n4l2c2t", "1n1l4c2t", "2n2l1c1t"])
def test_from_system_on_fake_sysfs_equals_from_topology(tmp_path: Path, text: str) -> None:
    want = Topology.parse(text)
    seen = TestTopology.from_system(fake_sysfs(tmp_path, want))
    assert seen == TestTopology.from_topology(want)
    assert seen.mismatches(want) == []


def test_mismatches_name_the_llc_split_the_guest_lacks(tmp_path: Path) -> None:
    # a VM asked for 2 LLCs but the guest sees one L3 over all CPUs
    root = fake_sysfs(tmp_path, Topology(1, 1, 4, 1))
    problems = TestTopology.from_system(root).mismatches(Topology(1, 2, 2, 1))
    assert problems == ["LLC groups: expected 0-1 | 2-3 for 1n2l2c1t, found 0-3"]


def test_memory_only_nodes_are_not_cpu_nodes(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path, Topology(1, 2, 2, 1))
    write(root / "devices/system/node/node1/cpulist", "")
    t = TestTopology.from_system(root)
    assert t.node_ids == (0,)
    with pytest.raises(ConfigError, match="NUMA node 1 does not exist"):
        t.numa_cpuset(1)


def test_unknown_cpu_and_llc_errors() -> None:
    t = TestTopology.from_topology(Topology(1, 2, 2, 1))
    with pytest.raises(ConfigError, match="CPU 9 does not exist"):
        t.smt_siblings(9)
    with pytest.raises(ConfigError, match="LLC 5 does not exist"):
        t.llc_aligned_cpuset(5)


def test_from_system_on_this_host_matches_sysconf() -> None:
    t = TestTopology.from_system()
    assert t.cpus == os.sysconf("SC_NPROCESSORS_ONLN")
    assert sum(len(c) for c in t.llc_cpusets) == t.cpus
    assert "cpus " in t.describe()
