"""CgroupDef: frozen, validated in the constructor, resolves against a topology."""

from __future__ import annotations

import dataclasses

import pytest

from ktstr.errors import ConfigError, KtstrError
from ktstr.scenario import CgroupDef, CpusetSpec, TestTopology
from ktstr.topology import Topology
from ktstr.work import SpinWait
from ktstr.workload import AffinityIntent

TOPO = TestTopology.from_topology(Topology(1, 2, 2, 1))


class Paired:
    """Stand-in for a grouped work type (two workers cooperate)."""

    name = "Paired"
    group_size = 2


def test_defaults() -> None:
    d = CgroupDef("cg_0")
    assert d.workers is None and d.cpuset is None and not d.swappable
    assert d.work == SpinWait()
    assert d.resolved_cpuset(TOPO) is None and d.resolved_affinity(TOPO) is None


def test_fields_after_name_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        CgroupDef("cg_0", 2)  # type: ignore[call-arg]


def test_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CgroupDef("cg_0").workers = 3  # type: ignore[misc]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "a/b"}, r"cgroup name 'a/b' is invalid: it contains '/'"),
    ({"name": ""}, r"cgroup name '' is invalid: it is empty"),
    ({"name": ".."}, r"cgroup name '..' is invalid"),
    ({"name": "cgroup.procs"}, r"clashes with the cgroup's own control files"),
    ({"name": "x", "workers": 0}, r"cgroup 'x': workers=0 is invalid"),
    ({"name": "x", "workers": True}, r"workers=True is invalid"),
    ({"name": "x", "nice": 20}, r"nice=20 is invalid"),
    ({"name": "x", "pcomm": "a" * 16}, r"pcomm='a{16}' is invalid"),
    ({"name": "x", "workers": 3, "work": Paired()}, r"workers=3 is not a multiple of Paired's "
                                                   r"group size 2; hint: use workers=2"),
    ({"name": "x", "cpuset": frozenset({1})}, r"is not a CpusetSpec"),
])
def test_validate_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(KtstrError, match=message):
        CgroupDef(**kwargs)  # type: ignore[arg-type]


def test_grouped_work_accepts_a_multiple() -> None:
    assert CgroupDef("x", workers=4, work=Paired()).workers == 4  # type: ignore[arg-type]


def test_resolves_cpuset_and_affinity() -> None:
    d = CgroupDef("x", cpuset=CpusetSpec.llc(1), affinity=CpusetSpec.exact([2]))
    assert d.resolved_cpuset(TOPO) == frozenset({2, 3})
    assert d.resolved_affinity(TOPO) == frozenset({2})
    assert CgroupDef("y", affinity=frozenset({0, 1})).resolved_affinity(TOPO) == frozenset({0, 1})
    with pytest.raises(ConfigError, match="do not exist"):
        CgroupDef("z", affinity=frozenset({7})).resolved_affinity(TOPO)
    with pytest.raises(ConfigError, match="LLC 4 does not exist"):
        CgroupDef("w", cpuset=CpusetSpec.llc(4)).resolved_cpuset(TOPO)


def test_affinity_intent_gives_each_worker_its_own_mask() -> None:
    d = CgroupDef("x", workers=3, cpuset=CpusetSpec.llc(1), affinity=AffinityIntent.single_cpu())
    assert d.worker_affinity(TOPO, d.resolved_cpuset(TOPO), 3) == (
        frozenset({2}), frozenset({3}), frozenset({2}))
    # a CpusetSpec affinity still gives every worker the same set
    same = CgroupDef("y", affinity=CpusetSpec.exact([1]))
    assert same.worker_affinity(TOPO, None, 2) == frozenset({1})
    assert CgroupDef("z").worker_affinity(TOPO, None, 2) is None
    with pytest.raises(ConfigError, match=r"'x': affinity single_cpu\(\) gives each worker"):
        d.resolved_affinity(TOPO)


def test_affinity_intent_errors_name_the_cgroup() -> None:
    d = CgroupDef("smt", affinity=AffinityIntent.smt_sibling_pair())
    with pytest.raises(ConfigError) as info:
        d.worker_affinity(TOPO, None, 2)
    assert str(info.value) == (
        "cgroup 'smt': affinity smt_sibling_pair() needs SMT, but topology 1n2l2c1t has one "
        "thread per core; hint: run it with threads=2 in @ktstr_test")


def test_affinity_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="affinity='llc' is not a CpusetSpec, an "
                                          "AffinityIntent or a set of CPUs"):
        CgroupDef("x", affinity="llc")  # type: ignore[arg-type]


def test_mem_policy_is_refused_until_supported():
    with pytest.raises(ConfigError) as err:
        CgroupDef("cg", mem_policy="interleave")
    assert str(err.value) == ("cgroup 'cg': mem_policy='interleave' is not supported yet "
                              "(workers do not set a memory policy yet); hint: leave it unset")
    assert CgroupDef("cg", mem_policy=None).mem_policy is None
