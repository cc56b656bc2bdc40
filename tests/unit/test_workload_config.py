"""WorkloadConfig validation (no processes)."""

from __future__ import annotations

import dataclasses

import pytest

from ktstr import work
from ktstr.errors import ConfigError
from ktstr.work import WorkType
from ktstr.workload import WorkloadConfig


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
