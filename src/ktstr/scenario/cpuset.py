"""`CpusetSpec`: a cpuset described against the topology, resolved at run time.

A test says "LLC 1" or "the second of three disjoint slices" rather than CPU
numbers, so the same test runs on every topology of a gauntlet. Variants are
classes; build them with the `CpusetSpec.llc/numa/range/disjoint/overlap/exact`
constructors. Values that are wrong whatever the topology (a fraction outside
[0, 1], `index >= of`) raise `ConfigError` when the spec is built; values that
depend on the topology (an LLC or node that does not exist, a slice with no CPU)
raise when it is resolved.

Semantics follow ktstr (Rust): `llc` and `numa` give the whole LLC / node;
`range`, `disjoint` and `overlap` slice the topology's *usable* CPUs (sorted;
all but the last CPU when there are more than 2, see `TestTopology.usable_cpus`):
- `range(a, b)`: positions `[int(n*a), int(n*b))` of the n usable CPUs.
- `disjoint(i, of)`: chunk = n // of; slice i is `[i*chunk, (i+1)*chunk)`, the
  last slice also takes the remainder.
- `overlap(i, of, frac)`: the disjoint slice widened by `int(chunk*frac)` CPUs on
  each inner side (slice 0 starts at 0, the last slice ends at n).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ktstr.errors import ConfigError
from ktstr.scenario.topo import TestTopology
from ktstr.topology import format_cpulist
from ktstr.validators import is_int


def _check_frac(what: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"cpuset {what}={value!r} is invalid: it must be a fraction in "
                          f"[0, 1]; hint: e.g. {what}=0.5 for half of the usable CPUs")


def _check_index(what: str, value: int, minimum: int) -> None:
    if not is_int(value) or value < minimum:
        raise ConfigError(f"cpuset {what}={value!r} is invalid: it must be an integer >= "
                          f"{minimum}")


def _check_partition(index: int, of: int) -> None:
    _check_index("of", of, 1)
    _check_index("index", index, 0)
    if index >= of:
        raise ConfigError(f"cpuset index={index} is invalid for of={of}: slices are numbered "
                          f"0-{of - 1}; hint: use an index below {of}")


class CpusetSpec:
    """A cpuset relative to the topology. Subclasses are the variants."""

    __slots__ = ()

    def resolve(self, topo: TestTopology) -> frozenset[int]:
        """The CPUs this spec names on `topo`; raises ConfigError if there are none."""
        cpus = self._cpus(topo)
        if not cpus:
            raise ConfigError(f"cpuset {self} resolves to no CPU on a topology with "
                              f"{topo.cpus} CPUs ({len(topo.usable_cpus)} usable: "
                              f"{format_cpulist(topo.usable_cpuset)}); hint: widen the slice "
                              "or run on a topology with more CPUs")
        return cpus

    def _cpus(self, topo: TestTopology) -> frozenset[int]:
        raise NotImplementedError

    @staticmethod
    def llc(index: int) -> Llc:
        return Llc(index)

    @staticmethod
    def numa(node: int) -> Numa:
        return Numa(node)

    @staticmethod
    def range(start_frac: float, end_frac: float) -> Range:
        return Range(start_frac, end_frac)

    @staticmethod
    def disjoint(index: int, of: int) -> Disjoint:
        return Disjoint(index, of)

    @staticmethod
    def overlap(index: int, of: int, frac: float) -> Overlap:
        return Overlap(index, of, frac)

    @staticmethod
    def exact(cpus: Iterable[int]) -> Exact:
        return Exact(frozenset(cpus))


@dataclass(frozen=True, slots=True)
class Llc(CpusetSpec):
    """Every CPU of LLC `index`."""

    index: int

    def __post_init__(self) -> None:
        _check_index("llc", self.index, 0)

    def __str__(self) -> str:
        return f"llc({self.index})"

    def _cpus(self, topo: TestTopology) -> frozenset[int]:
        return topo.llc_aligned_cpuset(self.index)


@dataclass(frozen=True, slots=True)
class Numa(CpusetSpec):
    """Every CPU of NUMA node `node`."""

    node: int

    def __post_init__(self) -> None:
        _check_index("numa", self.node, 0)

    def __str__(self) -> str:
        return f"numa({self.node})"

    def _cpus(self, topo: TestTopology) -> frozenset[int]:
        return topo.numa_cpuset(self.node)


@dataclass(frozen=True, slots=True)
class Range(CpusetSpec):
    """The usable CPUs from fraction `start_frac` to `end_frac` of the way through."""

    start_frac: float
    end_frac: float

    def __post_init__(self) -> None:
        _check_frac("start_frac", self.start_frac)
        _check_frac("end_frac", self.end_frac)
        if self.start_frac >= self.end_frac:
            raise ConfigError(f"cpuset range({self.start_frac}, {self.end_frac}) is empty: "
                              "start_frac must be below end_frac; hint: e.g. range(0.0, 0.5)")

    def __str__(self) -> str:
        return f"range({self.start_frac}, {self.end_frac})"

    def _cpus(self, topo: TestTopology) -> frozenset[int]:
        usable = topo.usable_cpus
        n = len(usable)
        return frozenset(usable[int(n * self.start_frac):int(n * self.end_frac)])


@dataclass(frozen=True, slots=True)
class Disjoint(CpusetSpec):
    """Slice `index` of `of` equal, non-overlapping slices of the usable CPUs."""

    index: int
    of: int

    def __post_init__(self) -> None:
        _check_partition(self.index, self.of)

    def __str__(self) -> str:
        return f"disjoint({self.index}, of={self.of})"

    def _cpus(self, topo: TestTopology) -> frozenset[int]:
        usable = _partitionable(self, topo, self.of)
        chunk = len(usable) // self.of
        end = len(usable) if self.index == self.of - 1 else (self.index + 1) * chunk
        return frozenset(usable[self.index * chunk:end])


@dataclass(frozen=True, slots=True)
class Overlap(CpusetSpec):
    """Slice `index` of `of`, widened by `frac` of a slice into its neighbours."""

    index: int
    of: int
    frac: float

    def __post_init__(self) -> None:
        _check_partition(self.index, self.of)
        _check_frac("frac", self.frac)

    def __str__(self) -> str:
        return f"overlap({self.index}, of={self.of}, frac={self.frac})"

    def _cpus(self, topo: TestTopology) -> frozenset[int]:
        usable = _partitionable(self, topo, self.of)
        n = len(usable)
        chunk = n // self.of
        widen = int(chunk * self.frac)
        start = 0 if self.index == 0 else max(0, self.index * chunk - widen)
        end = n if self.index == self.of - 1 else min(n, (self.index + 1) * chunk + widen)
        return frozenset(usable[start:end])


@dataclass(frozen=True, slots=True)
class Exact(CpusetSpec):
    """Exactly these CPUs (they must exist in the topology)."""

    cpus: frozenset[int]

    def __post_init__(self) -> None:
        if not self.cpus:
            raise ConfigError("cpuset exact() with no CPU is invalid: cpuset.cpus rejects an "
                              "empty set; hint: name at least one CPU, or set no cpuset")
        for cpu in self.cpus:
            _check_index("exact cpu", cpu, 0)

    def __str__(self) -> str:
        return f"exact({format_cpulist(self.cpus)})"

    def _cpus(self, topo: TestTopology) -> frozenset[int]:
        missing = self.cpus - topo.all_cpus
        if missing:
            raise ConfigError(f"cpuset {self} names CPU(s) {format_cpulist(missing)} that do "
                              f"not exist: the topology has CPUs {format_cpulist(topo.all_cpus)}; "
                              "hint: use CpusetSpec.range/disjoint to stay within any topology")
        return self.cpus


def _partitionable(spec: CpusetSpec, topo: TestTopology, of: int) -> tuple[int, ...]:
    usable = topo.usable_cpus
    if len(usable) < of:
        raise ConfigError(f"cpuset {spec} needs at least {of} usable CPUs, the topology has "
                          f"{len(usable)} ({format_cpulist(frozenset(usable))}); hint: use "
                          "fewer slices or a topology with more CPUs")
    return usable
