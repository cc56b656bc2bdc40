"""WorkloadConfig validation (no processes)."""

from __future__ import annotations

import dataclasses

import pytest

from ktstr import work
from ktstr.errors import ConfigError
from ktstr.work import WorkType
from ktstr.workload import AffinityIntent, WorkloadConfig


def test_defaults_are_two_spinwait_workers() -> None:
    cfg = WorkloadConfig()
    assert cfg.workers == 2
    assert cfg.work == work.SpinWait()
    assert (cfg.policy, cfg.nice, cfg.affinity, cfg.pcomm) == (None, None, None, None)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_worker_count_must_be_positive_int(bad: object) -> None:
    with pytest.raises(ConfigError, match=f"workers = {bad!r} is not a positive count"):
        WorkloadConfig(workers=bad)  # type: ignore[arg-type]


def test_work_must_be_a_work_type() -> None:
    with pytest.raises(ConfigError, match="work = 'SpinWait' is not a work type"):
        WorkloadConfig(work="SpinWait")  # type: ignore[arg-type]


def test_grouped_work_needs_a_multiple_of_its_group_size() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class TestOnlyPaired(WorkType):
        @property
        def group_size(self) -> int | None:
            return 2

    try:
        WorkloadConfig(workers=4, work=TestOnlyPaired())
        with pytest.raises(ConfigError, match="groups of 2 but workers = 3"):
            WorkloadConfig(workers=3, work=TestOnlyPaired())
    finally:
        WorkType._registry.pop("TestOnlyPaired", None)
        WorkType.ALL_NAMES = tuple(n for n in WorkType.ALL_NAMES if n != "TestOnlyPaired")


@pytest.mark.parametrize("bad", [-21, 20])
def test_nice_outside_range_is_rejected(bad: int) -> None:
    with pytest.raises(ConfigError, match=f"nice = {bad} is outside -20..19"):
        WorkloadConfig(nice=bad)


def test_affinity_is_normalised_to_frozenset() -> None:
    assert WorkloadConfig(affinity={1, 0}).affinity == frozenset({0, 1})  # type: ignore[arg-type]
    assert WorkloadConfig(affinity=[3]).affinity == frozenset({3})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [frozenset(), frozenset({-1}), ["0"]])
def test_affinity_must_be_non_empty_cpu_numbers(bad: object) -> None:
    with pytest.raises(ConfigError, match="is not a non-empty set of CPU numbers"):
        WorkloadConfig(affinity=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "a" * 16, "a\0b"])
def test_pcomm_must_fit_task_comm(bad: str) -> None:
    with pytest.raises(ConfigError, match="is not a task name of 1-15 bytes"):
        WorkloadConfig(pcomm=bad)


def test_policy_needs_an_apply_method() -> None:
    with pytest.raises(ConfigError, match="has no apply"):
        WorkloadConfig(policy="fifo")

    class Normal:
        def apply(self, pid: int) -> None:
            pass

    assert isinstance(WorkloadConfig(policy=Normal()).policy, Normal)


def test_affinity_per_worker_masks_are_one_per_worker() -> None:
    cfg = WorkloadConfig(workers=2, affinity=({1}, [0, 2]))  # type: ignore[arg-type]
    assert cfg.affinity == (frozenset({1}), frozenset({0, 2}))
    assert (cfg.affinity_for(0), cfg.affinity_for(1)) == (frozenset({1}), frozenset({0, 2}))
    same = WorkloadConfig(workers=3, affinity=frozenset({4}))
    assert [same.affinity_for(i) for i in range(3)] == [frozenset({4})] * 3
    assert WorkloadConfig().affinity_for(1) is None
    assert WorkloadConfig(affinity=(0, 1)).affinity == frozenset({0, 1})  # type: ignore[arg-type]


def test_affinity_per_worker_masks_must_match_the_worker_count() -> None:
    with pytest.raises(ConfigError) as info:
        WorkloadConfig(workers=3, affinity=(frozenset({0}), frozenset({1})))
    assert str(info.value) == ("affinity gives 2 per-worker masks for 3 workers; hint: one "
                               "mask per worker, or a single set for all of them")
    with pytest.raises(ConfigError, match="is not a non-empty set of CPU numbers"):
        WorkloadConfig(workers=2, affinity=(frozenset({0}), frozenset()))


def test_affinity_intent_is_kept_but_cannot_be_spawned_directly() -> None:
    cfg = WorkloadConfig(workers=2, affinity=AffinityIntent.single_cpu())
    assert cfg.affinity == AffinityIntent.single_cpu()
    message = ("affinity single_cpu() needs scenario context (the topology and the cgroup's "
               "CPUs) and cannot be spawned directly; hint: use it in CgroupDef(affinity=...), "
               "or pass affinity=AffinityIntent.single_cpu().resolve(ctx.topo, cpus, workers)")
    with pytest.raises(ConfigError) as info:
        cfg.require_resolved()
    assert str(info.value) == message
    with pytest.raises(ConfigError):
        cfg.affinity_for(0)
