"""Class, affinity, cgroup and NUMA churn types: defaults, validation, pure logic, and
short real runs of what needs no cgroup of its own (policy and mbind steps)."""

from __future__ import annotations

import os

import pytest

from ktstr.errors import ConfigError
from ktstr.work import WorkType, classchurn, numa
from ktstr.work.classchurn import (
    CgroupAttachStorm,
    CgroupChurn,
    CrossAffinityChurn,
    PolicyChurn,
    policy_steps,
    sibling_names,
)
from ktstr.work.loop import WorkLoop
from ktstr.work.numa import NumaMigrationChurn, NumaWorkingSetSweep, node_cpu_masks


class _StopAfter:
    """A stop signal that turns on after `n` looks: a loop runs a known number of times."""

    def __init__(self, n: int) -> None:
        self.left = n

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0

    def wait(self, timeout: float | None = None) -> bool:
        return self.is_set()


def _run(work: WorkType, looks: int) -> WorkLoop:
    loop = WorkLoop(_StopAfter(looks), seed=1)
    loop.begin()
    work.run(loop)
    loop.finish()
    return loop


NAMES = ("CrossAffinityChurn", "PolicyChurn", "NumaMigrationChurn", "CgroupChurn",
         "CgroupAttachStorm", "NumaWorkingSetSweep")


@pytest.mark.parametrize("name", NAMES)
def test_from_name_builds_the_default_and_it_is_ungrouped(name: str) -> None:
    w = WorkType.from_name(name)
    assert w.name == name and name in WorkType.ALL_NAMES
    assert w.group_size is None
    assert w == type(w)()


def test_defaults_are_the_module_constants() -> None:
    assert NumaMigrationChurn().period_ms == numa.NUMA_MIGRATION_PERIOD_MS
    c = CgroupChurn()
    assert (c.groups, c.cycle_ms) == (classchurn.CGROUP_CHURN_GROUPS,
                                      classchurn.CGROUP_CHURN_CYCLE_MS)
    assert CgroupChurn(groups=2, cycle_ms=5) == CgroupChurn(2, 5.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"groups": 0}, "CgroupChurn groups = 0"),
    ({"groups": True}, "CgroupChurn groups = True"),
    ({"groups": 2.0}, "CgroupChurn groups = 2.0"),
    ({"cycle_ms": 0}, "CgroupChurn cycle_ms = 0 is not a positive number of milliseconds"),
    ({"cycle_ms": float("nan")}, "cycle_ms = nan"),
    ({"cycle_ms": "10"}, "cycle_ms = '10'"),
])
def test_cgroup_churn_rejects_bad_parameters_naming_them(kwargs: dict[str, object],
                                                         match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CgroupChurn(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, float("inf"), None, False])
def test_numa_migration_churn_rejects_bad_periods(bad: object) -> None:
    with pytest.raises(ConfigError, match="NumaMigrationChurn period_ms"):
        NumaMigrationChurn(bad)  # type: ignore[arg-type]


def test_sibling_cgroups_sit_next_to_home_and_are_private_to_the_worker() -> None:
    assert sibling_names("ktstr/cg_0", "churn42", 2) == ["ktstr/cg_0_churn42_0",
                                                         "ktstr/cg_0_churn42_1"]
    assert sibling_names("a/b/c", "t", 1) == ["a/b/c_t_0"]
    # The root cgroup has no parent: its "siblings" are children of the root.
    assert sibling_names("", "churn7", 1) == ["ktstr_churn7_0"]


def test_policy_cycle_adds_rt_steps_only_when_allowed() -> None:
    base = [os.SCHED_OTHER, os.SCHED_BATCH, os.SCHED_IDLE]
    assert [p for p, _ in policy_steps(False)] == base
    steps = policy_steps(True)
    assert [p for p, _ in steps] == [*base, os.SCHED_FIFO, os.SCHED_RR]
    assert all(prio >= 1 for p, prio in steps if p in (os.SCHED_FIFO, os.SCHED_RR))


def test_node_masks_keep_only_allowed_cpus_and_drop_empty_nodes() -> None:
    nodes = {1: frozenset({2, 3}), 0: frozenset({0, 1}), 2: frozenset({4})}
    assert node_cpu_masks(nodes, {1, 2, 3}) == [frozenset({1}), frozenset({2, 3})]
    assert node_cpu_masks(nodes, {9}) == []


def test_policy_churn_really_changes_the_policy_and_restores_other() -> None:
    loop = _run(PolicyChurn(), 11)
    m = loop.metrics
    assert m["set_other"] >= 1 and m["set_batch"] >= 1 and m["set_idle"] >= 1
    if os.geteuid() == 0:
        assert m["set_fifo"] >= 1 and m["set_rr"] >= 1
    else:
        assert any("CAP_SYS_NICE" in n for n in loop.notes)
    assert m["policy_changes"] == loop.iterations
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_numa_migration_rotates_through_node_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    fake = {0: frozenset(cpus[:1]), 1: frozenset(cpus[1:2])}
    monkeypatch.setattr(numa, "numa_nodes", lambda: fake)
    before = os.sched_getaffinity(0)
    try:
        loop = _run(NumaMigrationChurn(period_ms=0.1), 12)
    finally:
        os.sched_setaffinity(0, before)
    assert loop.metrics["nodes"] == 2 and loop.metrics["node_switches"] >= 2
    assert loop.cpus >= {cpus[0], cpus[1]}, loop.cpus
    assert not loop.notes


def test_numa_sweep_binds_and_finds_its_pages_on_the_node() -> None:
    loop = _run(NumaWorkingSetSweep(), 10)
    m = loop.metrics
    assert m["mbind_failures"] == 0, loop.notes
    assert m["mbind_calls"] == loop.iterations
    assert m["pages_checked"] > 0 and m["pages_on_target"] == m["pages_checked"]
    if m["nodes"] < 2:
        assert any("one memory node" in n for n in loop.notes)


def test_cross_affinity_outside_a_dedicated_cgroup_only_repins_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classchurn, "cgroup_fs", lambda: None)
    before = os.sched_getaffinity(0)
    try:
        loop = _run(CrossAffinityChurn(), 6)
    finally:
        os.sched_setaffinity(0, before)
    assert loop.metrics["affinity_writes"] == loop.iterations
    assert any("dedicated cgroup" in n for n in loop.notes)


@pytest.mark.parametrize("work", [CgroupChurn(cycle_ms=0.1), CgroupAttachStorm()])
def test_cgroup_types_without_cgroup2_still_run_and_say_so(
        monkeypatch: pytest.MonkeyPatch, work: WorkType) -> None:
    monkeypatch.setattr(classchurn, "cgroup_fs", lambda: None)
    loop = _run(work, 6)
    assert loop.iterations >= 1 and loop.work_units >= 1
    assert any("no cgroup2" in n for n in loop.notes)
