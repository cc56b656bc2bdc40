"""AffinityIntent resolution: pure logic on TestTopology objects of several shapes."""

from __future__ import annotations

import pytest

from ktstr import AffinityIntent, ConfigError, Topology
from ktstr.scenario.topo import TestTopology
from ktstr.workload.affinity import (
    CrossCgroup,
    LlcAligned,
    SingleCpu,
    SmtSiblingPair,
    topology_name,
)

SMT = TestTopology.from_topology(Topology.parse("1n2l2c2t"))  # cores 0-1 | 2-3 | 4-5 | 6-7
NUMA = TestTopology.from_topology(Topology.parse("2n2l2c1t"))  # llcs 0-1 | 2-3, no SMT


def fs(*cpus: int) -> frozenset[int]:
    return frozenset(cpus)


def test_constructors_build_the_variants_and_print_like_the_call() -> None:
    assert isinstance(AffinityIntent.single_cpu(), SingleCpu)
    assert isinstance(AffinityIntent.llc_aligned(), LlcAligned)
    assert isinstance(AffinityIntent.smt_sibling_pair(), SmtSiblingPair)
    assert isinstance(AffinityIntent.cross_cgroup(), CrossCgroup)
    assert AffinityIntent.single_cpu() == SingleCpu()
    assert [str(i) for i in (SingleCpu(), LlcAligned(), SmtSiblingPair(), CrossCgroup())] == [
        "single_cpu()", "llc_aligned()", "smt_sibling_pair()", "cross_cgroup()"]


def test_topology_name_gives_the_ktstr_test_form() -> None:
    assert topology_name(SMT) == "1n2l2c2t"
    assert topology_name(NUMA) == "2n2l2c1t"


# -- single_cpu --------------------------------------------------------------------


def test_single_cpu_pins_each_worker_to_one_cpu_round_robin() -> None:
    masks = SingleCpu().resolve(SMT, fs(4, 5, 6), 5)
    assert masks == (fs(4), fs(5), fs(6), fs(4), fs(5))


def test_single_cpu_without_cpuset_uses_every_cpu() -> None:
    assert SingleCpu().resolve(NUMA, None, 4) == (fs(0), fs(1), fs(2), fs(3))


# -- llc_aligned -------------------------------------------------------------------


def test_llc_aligned_gives_each_worker_one_whole_llc_round_robin() -> None:
    masks = LlcAligned().resolve(SMT, None, 3)
    assert masks == (fs(0, 1, 2, 3), fs(4, 5, 6, 7), fs(0, 1, 2, 3))


def test_llc_aligned_intersects_an_llc_cut_by_the_cpuset() -> None:
    # cpuset 2-5 cuts both LLCs: each worker gets the cgroup's part of one LLC
    assert LlcAligned().resolve(SMT, fs(2, 3, 4, 5), 2) == (fs(2, 3), fs(4, 5))
    # a cpuset inside one LLC: every worker on that LLC's part
    assert LlcAligned().resolve(NUMA, fs(2, 3), 3) == (fs(2, 3),) * 3


# -- smt_sibling_pair --------------------------------------------------------------


def test_smt_sibling_pair_gives_each_worker_one_core_round_robin() -> None:
    masks = SmtSiblingPair().resolve(SMT, fs(0, 1, 2, 3), 3)
    assert masks == (fs(0, 1), fs(2, 3), fs(0, 1))


def test_smt_sibling_pair_skips_cores_the_cpuset_cuts() -> None:
    # cpuset 1-4 holds core 2-3 whole but only half of cores 0-1 and 4-5
    assert SmtSiblingPair().resolve(SMT, fs(1, 2, 3, 4), 2) == (fs(2, 3), fs(2, 3))


def test_smt_sibling_pair_with_no_whole_core_in_the_cpuset_raises() -> None:
    with pytest.raises(ConfigError) as info:
        SmtSiblingPair().resolve(SMT, fs(1, 2), 2)
    assert str(info.value) == (
        "affinity smt_sibling_pair(): the cgroup's CPUs 1-2 hold no whole core (its SMT "
        "siblings are 0-1 | 2-3); hint: give the cgroup a cpuset of whole cores, e.g. "
        "CpusetSpec.llc(0)")


def test_smt_sibling_pair_without_smt_names_the_topology_and_the_fix() -> None:
    message = ("affinity smt_sibling_pair() needs SMT, but topology 2n2l2c1t has one thread "
               "per core; hint: run it with threads=2 in @ktstr_test")
    with pytest.raises(ConfigError) as info:
        SmtSiblingPair().resolve(NUMA, None, 2)
    assert str(info.value) == message
    with pytest.raises(ConfigError) as info:  # before boot, on the requested topology
        SmtSiblingPair().check_topology(Topology.parse("2n2l2c1t"))
    assert str(info.value) == message
    SmtSiblingPair().check_topology(Topology.parse("1n1l2c2t"))  # fine with SMT


# -- cross_cgroup ------------------------------------------------------------------


def test_cross_cgroup_asks_every_worker_for_every_cpu_beyond_the_cpuset() -> None:
    assert CrossCgroup().resolve(SMT, fs(0, 1), 2) == (SMT.all_cpus, SMT.all_cpus)
    CrossCgroup().check_topology(Topology.parse("1n1l1c1t"))


# -- errors common to every intent -------------------------------------------------


@pytest.mark.parametrize("workers", [0, -1, True, 1.5])
def test_resolve_rejects_a_bad_worker_count(workers: object) -> None:
    with pytest.raises(ConfigError, match=r"single_cpu\(\): workers=.* must be an integer >= 1"):
        SingleCpu().resolve(SMT, None, workers)  # type: ignore[arg-type]


def test_resolve_rejects_cpus_outside_the_topology() -> None:
    with pytest.raises(ConfigError) as info:
        LlcAligned().resolve(NUMA, fs(8, 9), 1)
    assert str(info.value) == (
        "affinity llc_aligned(): the cgroup's CPUs 8-9 are not CPUs of this topology (0-3); "
        "hint: resolve the cgroup's cpuset on the same topology")


def test_the_base_class_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        AffinityIntent().resolve(SMT, None, 1)
