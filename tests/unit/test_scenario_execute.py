"""execute_defs and the custom-scenario helpers, with a fake workload and cgroup manager.

The fakes stand in for the process and cgroup side effects only; what is checked
is the orchestration: resolution before creation, spawn arguments, start order,
per-cgroup judging with the resolved cpuset, and cleanup on every path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ktstr.checks import AssertResult
from ktstr.errors import ConfigError
from ktstr.scenario import CgroupDef, CpusetSpec, Ctx, TestTopology, execute_defs
from ktstr.scenario import custom as custom_mod
from ktstr.scenario import execute as execute_mod
from ktstr.topology import Topology
from ktstr.work import SpinWait, YieldHeavy
from ktstr.workload import AffinityIntent, WorkerReport, WorkloadConfig


class FakeCgroups:
    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []
        self.live: set[str] = set()

    def create(self, name: str) -> Path:
        self.log.append(("create", name))
        self.live.add(name)
        return self.path(name)

    def path(self, name: str) -> Path:
        return Path("/fake/ktstr") / name

    def set_cpuset(self, name: str, cpus: frozenset[int]) -> frozenset[int]:
        self.log.append(("set_cpuset", name, ",".join(map(str, sorted(cpus)))))
        return cpus

    def remove(self, name: str) -> None:
        self.log.append(("remove", name))
        self.live.discard(name)

    #: What `cpuset.cpus.effective` reads for a cgroup (a parent's restriction shows here).
    effective: ClassVar[dict[str, frozenset[int]]] = {}

    def effective_cpus(self, name: str) -> frozenset[int]:
        self.log.append(("effective_cpus", name))
        return self.effective[name]


class FakeHandle:
    spawned: ClassVar[list[FakeHandle]] = []
    fail_on_spawn: int | None = None

    def __init__(self, cfg: WorkloadConfig, cgroup_dir: Path | None, group_idx: int) -> None:
        self.cfg, self.cgroup_dir, self.group_idx = cfg, cgroup_dir, group_idx
        self.events: list[str] = []
        self.pids = [1000 + group_idx]

    @classmethod
    def spawn(cls, cfg: WorkloadConfig, *, cgroup_dir: Path | None = None,
              group_idx: int = 0, start: bool = False) -> FakeHandle:
        if cls.fail_on_spawn == len(cls.spawned):
            raise OSError("fork failed")
        handle = cls(cfg, cgroup_dir, group_idx)
        cls.spawned.append(handle)
        return handle

    def start(self) -> None:
        self.events.append("start")

    def stop_and_collect(self) -> list[WorkerReport]:
        self.events.append("collect")
        return [WorkerReport(tid=self.pids[0] * 10 + i, group_idx=self.group_idx)
                for i in range(self.cfg.workers)]

    def kill(self) -> None:
        self.events.append("kill")


class FakeChecks:
    """Records assert_cgroup calls; fails the cgroup named `bad`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, frozenset[int] | None, list[int]]] = []

    def assert_cgroup(self, reports: Sequence[WorkerReport], cpuset: Any,
                      *, name: str = "") -> AssertResult:
        self.calls.append((name, cpuset, [r.tid for r in reports]))
        return AssertResult.fail(f"{name} unfair") if name == "bad" else AssertResult.ok()


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch) -> Ctx:
    FakeHandle.spawned = []
    FakeHandle.fail_on_spawn = None
    monkeypatch.setattr(execute_mod, "WorkloadHandle", FakeHandle)
    monkeypatch.setattr(custom_mod, "WorkloadHandle", FakeHandle)
    monkeypatch.setattr("ktstr.scenario.execute.time.sleep", lambda s: None)
    return Ctx(cgroups=FakeCgroups(), topo=TestTopology.from_topology(Topology(1, 2, 2, 1)),  # type: ignore[arg-type]
               checks=FakeChecks(), duration=0.0, settle=0.0, workers_per_cgroup=3)  # type: ignore[arg-type]


def test_execute_defs_creates_spawns_starts_and_judges(ctx: Ctx) -> None:
    result = execute_defs(ctx, [
        CgroupDef("a", cpuset=CpusetSpec.llc(1)),
        CgroupDef("bad", workers=1, work=YieldHeavy(), nice=5,
                  affinity=CpusetSpec.exact([0])),
    ])
    cg: FakeCgroups = ctx.cgroups  # type: ignore[assignment]
    assert cg.log == [("create", "a"), ("set_cpuset", "a", "2,3"), ("create", "bad"),
                      ("remove", "bad"), ("remove", "a")]
    a, bad = FakeHandle.spawned
    assert (a.cfg.workers, a.cfg.work, a.group_idx, a.cgroup_dir) == (
        3, SpinWait(), 0, Path("/fake/ktstr/a"))
    assert (bad.cfg.workers, bad.cfg.work, bad.cfg.nice, bad.cfg.affinity, bad.group_idx) == (
        1, YieldHeavy(), 5, frozenset({0}), 1)
    assert a.events == ["start", "collect", "kill"] and bad.events == a.events
    checks: FakeChecks = ctx.checks  # type: ignore[assignment]
    assert checks.calls == [("a", frozenset({2, 3}), [10000, 10001, 10002]),
                            ("bad", None, [10010])]
    assert not result.passed and result.details == ["bad unfair"]


def test_swappable_defs_take_the_work_type_override(ctx: Ctx) -> None:
    ctx.work_type_override = YieldHeavy()
    execute_defs(ctx, [CgroupDef("fixed"), CgroupDef("swap", swappable=True)])
    assert [h.cfg.work for h in FakeHandle.spawned] == [SpinWait(), YieldHeavy()]


def test_bad_cpuset_fails_before_anything_is_created(ctx: Ctx) -> None:
    with pytest.raises(ConfigError, match="LLC 5 does not exist"):
        execute_defs(ctx, [CgroupDef("a"), CgroupDef("b", cpuset=CpusetSpec.llc(5))])
    assert ctx.cgroups.log == []  # type: ignore[attr-defined]
    assert FakeHandle.spawned == []


def test_affinity_intent_is_resolved_per_worker_on_the_effective_cpuset(ctx: Ctx) -> None:
    FakeCgroups.effective = {"one": frozenset({3}), "llc": frozenset({0, 1, 2, 3})}
    execute_defs(ctx, [
        CgroupDef("one", workers=2, cpuset=CpusetSpec.llc(1),
                  affinity=AffinityIntent.single_cpu()),
        CgroupDef("llc", workers=3, affinity=AffinityIntent.llc_aligned()),
        CgroupDef("plain", workers=1, affinity=CpusetSpec.exact([1])),
    ])
    cg: FakeCgroups = ctx.cgroups  # type: ignore[assignment]
    assert ("effective_cpus", "one") in cg.log and ("effective_cpus", "plain") not in cg.log
    one, llc, plain = FakeHandle.spawned
    # planned on llc(1) = 2-3, but the kernel only lets the cgroup use CPU 3
    assert one.cfg.affinity == (frozenset({3}), frozenset({3}))
    assert llc.cfg.affinity == (frozenset({0, 1}), frozenset({2, 3}), frozenset({0, 1}))
    assert plain.cfg.affinity == frozenset({1})


def test_affinity_intent_the_topology_cannot_meet_fails_before_anything_is_created(
        ctx: Ctx) -> None:
    with pytest.raises(ConfigError, match=r"cgroup 'b': affinity smt_sibling_pair\(\) needs "
                                          r"SMT, but topology 1n2l2c1t"):
        execute_defs(ctx, [CgroupDef("a"),
                           CgroupDef("b", affinity=AffinityIntent.smt_sibling_pair())])
    assert ctx.cgroups.log == []  # type: ignore[attr-defined]
    assert FakeHandle.spawned == []


def test_duplicate_names_are_refused(ctx: Ctx) -> None:
    with pytest.raises(ConfigError, match="'a' is defined twice"):
        execute_defs(ctx, [CgroupDef("a"), CgroupDef("a")])


def test_failure_mid_setup_kills_workers_and_removes_cgroups(ctx: Ctx) -> None:
    FakeHandle.fail_on_spawn = 1
    with pytest.raises(OSError, match="fork failed"):
        execute_defs(ctx, [CgroupDef("a"), CgroupDef("b")])
    assert FakeHandle.spawned[0].events == ["kill"]
    assert ctx.cgroups.live == set()  # type: ignore[attr-defined]


def test_setup_cgroups_yields_started_handles_and_cleans_up_on_error(ctx: Ctx) -> None:
    wl = custom_mod.dfl_wl(ctx)
    assert (wl.workers, wl.work) == (3, SpinWait())
    with pytest.raises(RuntimeError, match="body"), \
            custom_mod.setup_cgroups(ctx, 2, wl) as handles:
        assert [h.cgroup_dir for h in handles] == [Path("/fake/ktstr/cg_0"),
                                                   Path("/fake/ktstr/cg_1")]
        assert [h.events for h in handles] == [["start"], ["start"]]  # type: ignore[attr-defined]
        raise RuntimeError("body")
    assert [h.events[-1] for h in FakeHandle.spawned] == ["kill", "kill"]
    assert ctx.cgroups.live == set()  # type: ignore[attr-defined]


def test_collect_all_merges_every_handle(ctx: Ctx) -> None:
    with custom_mod.setup_cgroups(ctx, 2, WorkloadConfig(workers=1)) as handles:
        result = custom_mod.collect_all(handles, ctx.checks)
    assert result.passed
    assert [c[2] for c in ctx.checks.calls] == [[10000], [10010]]  # type: ignore[attr-defined]
