"""CpusetSpec variants resolved on several topologies, and their errors."""

from __future__ import annotations

import dataclasses

import pytest

from ktstr.errors import ConfigError
from ktstr.scenario import CpusetSpec, TestTopology
from ktstr.topology import Topology


def topo(text: str) -> TestTopology:
    return TestTopology.from_topology(Topology.parse(text))


def cpus(*ranges: range | int) -> frozenset[int]:
    out: set[int] = set()
    for r in ranges:
        out.update(r if isinstance(r, range) else [r])
    return frozenset(out)


# 1n2l2c1t: CPUs 0-3, LLCs {0,1} {2,3}; usable 0-2 (the last CPU stays for the root cgroup)
# 2n4l2c2t: CPUs 0-15, LLCs of 4, node 0 = 0-7, node 1 = 8-15; usable 0-14
# 1n1l2c1t: CPUs 0-1, all usable
CASES = [
    ("1n2l2c1t", CpusetSpec.llc(0), cpus(0, 1)),
    ("1n2l2c1t", CpusetSpec.llc(1), cpus(2, 3)),
    ("1n2l2c1t", CpusetSpec.numa(0), cpus(range(4))),
    ("1n2l2c1t", CpusetSpec.range(0.0, 0.5), cpus(0)),
    ("1n2l2c1t", CpusetSpec.range(0.5, 1.0), cpus(1, 2)),
    ("1n2l2c1t", CpusetSpec.disjoint(0, 2), cpus(0)),
    ("1n2l2c1t", CpusetSpec.disjoint(1, 2), cpus(1, 2)),
    ("1n2l2c1t", CpusetSpec.overlap(1, 2, 1.0), cpus(0, 1, 2)),
    ("1n2l2c1t", CpusetSpec.overlap(0, 2, 0.5), cpus(0)),  # int(1 * 0.5) = 0 widening
    ("1n2l2c1t", CpusetSpec.exact([3]), cpus(3)),  # exact may name the reserved CPU
    ("2n4l2c2t", CpusetSpec.llc(3), cpus(range(12, 16))),
    ("2n4l2c2t", CpusetSpec.numa(1), cpus(range(8, 16))),
    ("2n4l2c2t", CpusetSpec.range(0.25, 0.75), cpus(range(3, 11))),  # int(3.75)..int(11.25)
    ("2n4l2c2t", CpusetSpec.range(0.0, 1.0), cpus(range(15))),
    ("2n4l2c2t", CpusetSpec.disjoint(0, 3), cpus(range(0, 5))),
    ("2n4l2c2t", CpusetSpec.disjoint(1, 3), cpus(range(5, 10))),
    ("2n4l2c2t", CpusetSpec.disjoint(2, 3), cpus(range(10, 15))),
    ("2n4l2c2t", CpusetSpec.disjoint(2, 4), cpus(6, 7, 8)),
    ("2n4l2c2t", CpusetSpec.disjoint(3, 4), cpus(range(9, 15))),  # last slice takes the rest
    ("2n4l2c2t", CpusetSpec.overlap(1, 3, 0.4), cpus(range(3, 12))),
    ("2n4l2c2t", CpusetSpec.overlap(0, 3, 0.4), cpus(range(0, 7))),
    ("2n4l2c2t", CpusetSpec.overlap(2, 3, 0.4), cpus(range(8, 15))),
    ("1n1l2c1t", CpusetSpec.disjoint(1, 2), cpus(1)),
    ("1n1l2c1t", CpusetSpec.range(0.5, 1.0), cpus(1)),
]


@pytest.mark.parametrize(("topo_text", "spec", "expected"), CASES,
                         ids=[f"{t}-{s}" for t, s, _ in CASES])
def test_resolve(topo_text: str, spec: CpusetSpec, expected: frozenset[int]) -> None:
    assert spec.resolve(topo(topo_text)) == expected


def test_disjoint_slices_partition_the_usable_cpus() -> None:
    t = topo("2n4l2c2t")
    for of in (1, 2, 3, 5, 7):
        slices = [CpusetSpec.disjoint(i, of).resolve(t) for i in range(of)]
        assert frozenset().union(*slices) == t.usable_cpuset
        assert sum(len(s) for s in slices) == len(t.usable_cpus)


def test_overlap_zero_equals_disjoint() -> None:
    t = topo("1n2l4c1t")
    for i in range(3):
        assert CpusetSpec.overlap(i, 3, 0.0).resolve(t) == CpusetSpec.disjoint(i, 3).resolve(t)


def test_specs_are_frozen_hashable_values() -> None:
    assert CpusetSpec.llc(1) == CpusetSpec.llc(1)
    assert len({CpusetSpec.llc(1), CpusetSpec.llc(1), CpusetSpec.numa(1)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        CpusetSpec.llc(1).index = 2  # type: ignore[misc]
    assert str(CpusetSpec.overlap(1, 3, 0.5)) == "overlap(1, of=3, frac=0.5)"


@pytest.mark.parametrize(("topo_text", "spec", "message"), [
    ("1n2l2c1t", CpusetSpec.llc(2), r"LLC 2 does not exist: this topology has 2 LLC\(s\) \(0-1\)"),
    ("1n2l2c1t", CpusetSpec.numa(1), r"NUMA node 1 does not exist: .* node\(s\) \[0\]"),
    ("2n4l2c2t", CpusetSpec.numa(2), r"NUMA node 2 does not exist"),
    ("1n1l2c1t", CpusetSpec.range(0.0, 0.4), r"range\(0.0, 0.4\) resolves to no CPU"),
    ("1n1l2c1t", CpusetSpec.disjoint(0, 3), r"needs at least 3 usable CPUs, .* has 2"),
    ("1n1l2c1t", CpusetSpec.overlap(0, 3, 0.5), r"needs at least 3 usable CPUs"),
    ("1n2l2c1t", CpusetSpec.exact([1, 4, 5]), r"names CPU\(s\) 4-5 that do not exist"),
])
def test_resolve_errors(topo_text: str, spec: CpusetSpec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec.resolve(topo(topo_text))


@pytest.mark.parametrize(("build", "message"), [
    (lambda: CpusetSpec.range(-0.1, 0.5), r"start_frac=-0.1 is invalid: .* \[0, 1\]"),
    (lambda: CpusetSpec.range(0.0, 1.5), r"end_frac=1.5 is invalid"),
    (lambda: CpusetSpec.range(0.5, 0.5), r"range\(0.5, 0.5\) is empty"),
    (lambda: CpusetSpec.range(0.7, 0.2), r"start_frac must be below end_frac"),
    (lambda: CpusetSpec.range(float("nan"), 0.5), r"start_frac=nan is invalid"),
    (lambda: CpusetSpec.overlap(0, 2, 1.5), r"frac=1.5 is invalid"),
    (lambda: CpusetSpec.overlap(0, 2, -0.1), r"frac=-0.1 is invalid"),
    (lambda: CpusetSpec.disjoint(2, 2), r"index=2 is invalid for of=2"),
    (lambda: CpusetSpec.disjoint(0, 0), r"of=0 is invalid"),
    (lambda: CpusetSpec.disjoint(-1, 2), r"index=-1 is invalid"),
    (lambda: CpusetSpec.llc(-1), r"llc=-1 is invalid"),
    (lambda: CpusetSpec.exact([]), r"exact\(\) with no CPU is invalid"),
    (lambda: CpusetSpec.exact([-2]), r"exact cpu=-2 is invalid"),
])
def test_construction_errors(build: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()  # type: ignore[operator]
