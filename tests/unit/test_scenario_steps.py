"""Step and execute_steps: ordering, holds, phase judging, validation and cleanup.

Most tests use a fake cgroup manager (records calls), fake worker handles and a
fake clock, so they check the orchestration on any host. The last test runs
real workers in real cgroups (root and cgroup2 needed) and freezes one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ktstr import (
    AffinityIntent,
    CgroupDef,
    CpusetSpec,
    Ctx,
    HoldSpec,
    Op,
    Scheduler,
    Step,
    execute_steps,
)
from ktstr.checks import Assert, AssertResult
from ktstr.errors import ConfigError
from ktstr.scenario import TestTopology
from ktstr.scenario import live as live_mod
from ktstr.scenario import steps as steps_mod
from ktstr.scenario.ops import cpuset_ops
from ktstr.system.cgroup import cgroup2_mount
from ktstr.topology import Topology
from ktstr.work import SpinWait, YieldHeavy
from ktstr.workload import WorkerReport, WorkloadConfig


class FakeClock:
    """monotonic() and sleep() for the steps module: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(round(s, 6))
        self.now += s


class FakeCgroups:
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log
        self.live: set[str] = set()
        self.fail_on: str | None = None
        self.members: dict[str, list[int]] = {}
        self.thread_members: dict[str, list[int]] = {}

    def _do(self, *entry: Any) -> None:
        self.log.append(entry)
        if entry[0] == self.fail_on:
            raise OSError(f"{entry[0]} failed")

    def create(self, name: str) -> Path:
        self._do("create", name)
        self.live.add(name)
        return self.path(name)

    def path(self, name: str) -> Path:
        return Path("/fake") / name

    def remove(self, name: str) -> None:
        self._do("remove", name)
        self.live.discard(name)

    def set_cpuset(self, name: str, cpus: frozenset[int]) -> frozenset[int]:
        self._do("set_cpuset", name, tuple(sorted(cpus)))
        return cpus

    def clear_cpuset(self, name: str) -> None:
        self._do("clear_cpuset", name)

    def move_tasks(self, src: str, dst: str) -> int:
        self._do("move_tasks", src, dst)
        return 0

    def procs(self, name: str) -> list[int]:
        self._do("procs", name)
        return self.members.get(name, [])

    def threads(self, name: str) -> list[int]:
        self._do("threads", name)
        return self.thread_members.get(name, self.members.get(name, []))

    def effective_cpus(self, name: str) -> frozenset[int]:
        self._do("effective_cpus", name)
        return frozenset({1})  # as if a parent cgroup left only CPU 1

    def freeze(self, name: str) -> None:
        self._do("freeze", name)

    def unfreeze(self, name: str) -> None:
        self._do("unfreeze", name)


class FakeHandle:
    spawned: ClassVar[list[FakeHandle]] = []
    log: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, cfg: WorkloadConfig, cgroup_dir: Path | None, group_idx: int) -> None:
        self.cfg, self.cgroup_dir, self.group_idx = cfg, cgroup_dir, group_idx
        self.pids = [1000 + group_idx]
        self.collected = False

    @classmethod
    def spawn(cls, cfg: WorkloadConfig, *, cgroup_dir: Path | None = None,
              group_idx: int = 0) -> FakeHandle:
        handle = cls(cfg, cgroup_dir, group_idx)
        cls.spawned.append(handle)
        cls.log.append(("spawn", cgroup_dir.name if cgroup_dir else "", cfg.workers))
        return handle

    def start(self) -> None:
        self.log.append(("start", self.group_idx))

    def stop_and_collect(self) -> list[WorkerReport]:
        self.log.append(("collect", self.group_idx))
        self.collected = True
        return [WorkerReport(tid=self.pids[0] * 10 + i, group_idx=self.group_idx)
                for i in range(self.cfg.workers)]

    def kill(self) -> None:
        self.log.append(("kill", self.group_idx))


class FakeChecks:
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log
        self.reports: dict[str, list[WorkerReport]] = {}

    def assert_cgroup(self, reports: Sequence[WorkerReport], cpuset: Any,
                      *, name: str = "") -> AssertResult:
        self.log.append(("judge", name, tuple(sorted(cpuset)) if cpuset else None,
                         tuple(r.step for r in reports)))
        self.reports[name] = list(reports)
        return AssertResult.fail(f"{name} unfair") if name == "bad" else AssertResult.ok()


@pytest.fixture
def log() -> list[tuple[Any, ...]]:
    return []


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(steps_mod, "time", fake)
    return fake


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch, log: list[tuple[Any, ...]], clock: FakeClock) -> Ctx:
    FakeHandle.spawned = []
    FakeHandle.log = log
    monkeypatch.setattr(live_mod, "WorkloadHandle", FakeHandle)
    return Ctx(cgroups=FakeCgroups(log),  # type: ignore[arg-type]
               topo=TestTopology.from_topology(Topology(1, 2, 2, 1)),
               checks=FakeChecks(log), duration=4.0, settle=0.0,  # type: ignore[arg-type]
               workers_per_cgroup=2)


def test_step_constructors() -> None:
    d = CgroupDef("a")
    assert Step().hold == HoldSpec.FULL and Step().ops == () and Step().setup == ()
    assert Step.hold(HoldSpec.fixed(1)) == Step(hold=HoldSpec.fixed(1))
    assert Step.with_op(Op.add_cgroup("x"), HoldSpec.frac(0.5)).ops == (Op.add_cgroup("x"),)
    s = Step.with_defs([d], HoldSpec.fixed(2))
    assert (s.setup, s.hold, s.ops) == ((d,), HoldSpec.fixed(2), ())
    assert s.set_ops([Op.stop_cgroup("a")]).set_ops([Op.freeze_cgroup("a")]).ops == (
        Op.freeze_cgroup("a"),)  # replace, not extend
    assert s.set_hold(HoldSpec.FULL).hold == HoldSpec.FULL
    factory = lambda ctx: [d]  # noqa: E731
    assert Step.with_defs(factory).setup is factory
    with pytest.raises(ConfigError, match="is not an Op"):
        Step(ops=["add"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="is not a CgroupDef"):
        Step(setup=["a"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="is not a HoldSpec"):
        Step(hold=1.0)  # type: ignore[arg-type]


def test_op_constructors_check_their_arguments() -> None:
    assert Op.spawn("a").work == SpinWait() and Op.spawn("a").workers is None
    assert Op.spawn("a", YieldHeavy(), 3) == Op.spawn("a", YieldHeavy(), 3)
    with pytest.raises(ConfigError, match="not a cgroup name"):
        Op.add_cgroup("")
    with pytest.raises(ConfigError, match="not a positive count"):
        Op.spawn("a", SpinWait(), 0)
    with pytest.raises(ConfigError, match="is not a CpusetSpec"):
        Op.set_cpuset("a", {0, 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tag '' is empty"):
        Op.capture_cgroup_procs("", "a")


def test_non_loop_step_applies_ops_then_setup_then_holds(ctx: Ctx, log: list[Any],
                                                         clock: FakeClock) -> None:
    result = execute_steps(ctx, [
        Step(ops=[Op.add_cgroup("x"), Op.spawn("x", workers=1)],
             setup=[CgroupDef("a", cpuset=CpusetSpec.llc(1))], hold=HoldSpec.frac(0.25)),
        Step.hold(HoldSpec.fixed(1.5)),
        Step.with_op(Op.freeze_cgroup("x"), HoldSpec.FULL),
    ])
    assert result.passed
    assert log == [
        ("create", "x"), ("spawn", "x", 1), ("start", 0),          # step 1 ops
        ("create", "a"), ("set_cpuset", "a", (2, 3)), ("spawn", "a", 2), ("start", 1),
        ("collect", 1), ("judge", "a", (2, 3), (1, 1)), ("remove", "a"),  # step 1 ends
        ("freeze", "x"),                                            # step 3 ops
        ("unfreeze", "x"), ("collect", 0), ("judge", "x", None, (3,)),  # thawed, then judged
        ("remove", "x"), ("kill", 0), ("kill", 1),                 # finally (kill is a no-op
    ]                                                               # after a real collect)
    assert clock.sleeps == [1.0, 1.5, 4.0]
    assert ctx.current_step == 3


def test_loop_step_sets_up_once_then_repeats_ops_until_the_scenario_time_is_used(
        ctx: Ctx, log: list[Any], clock: FakeClock) -> None:
    execute_steps(ctx, [
        Step.hold(HoldSpec.fixed(1.0)),
        Step(ops=[Op.freeze_cgroup("a"), Op.unfreeze_cgroup("a")], setup=[CgroupDef("a")],
             hold=HoldSpec.loop_at(0.7)),
    ])
    ops = [e[0] for e in log]
    assert ops[:3] == ["create", "spawn", "start"]  # setup before the first pass
    # 3 s left after step 1: passes at +0, +0.7, +1.4, +2.1, +2.8; then sleep to the end
    assert ops.count("freeze") == 5 and ops.count("unfreeze") == 5
    assert clock.sleeps == [1.0, 0.7, 0.7, 0.7, 0.7, pytest.approx(0.2)]
    assert ("judge", "a", None, (2, 2)) in log


def test_loop_step_with_no_time_left_runs_one_pass(ctx: Ctx, log: list[Any]) -> None:
    execute_steps(ctx, [Step.hold(HoldSpec.FULL),
                        Step(ops=[Op.add_cgroup("late"), Op.remove_cgroup("late")],
                             hold=HoldSpec.loop_at(0.1))])
    assert log.count(("create", "late")) == 1


def test_setup_factory_is_called_at_its_step(ctx: Ctx, log: list[Any]) -> None:
    seen: list[int] = []

    def factory(c: Ctx) -> list[CgroupDef]:
        seen.append(c.current_step)
        return [CgroupDef(f"made_{c.current_step}", workers=1)]

    execute_steps(ctx, [Step.hold(HoldSpec.fixed(0)), Step.with_defs(factory, HoldSpec.FULL)])
    assert seen == [2]
    assert ("judge", "made_2", None, (2,)) in log


def test_op_lifecycle_cpusets_moves_and_captures(ctx: Ctx, log: list[Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pinned: list[tuple[int, frozenset[int]]] = []
    monkeypatch.setattr(cpuset_ops, "set_affinity", lambda pid, cpus: pinned.append((pid, cpus)))
    cg: FakeCgroups = ctx.cgroups  # type: ignore[assignment]
    cg.members = {"b": [41, 42]}
    cg.thread_members = {"b": [41, 42, 4201]}  # 4201: a worker thread of leader 42
    captures: dict[str, list[int]] = {}
    result = execute_steps(ctx, [
        Step(ops=[Op.add_cgroup("a"), Op.add_cgroup("bad"), Op.add_cgroup("b"),
                  Op.set_cpuset("a", CpusetSpec.llc(0)), Op.spawn("a", workers=1),
                  Op.spawn("bad", workers=1)], hold=HoldSpec.fixed(0)),
        Step(ops=[Op.swap_cpusets("a", "b"), Op.set_affinity("b", CpusetSpec.exact([3])),
                  Op.capture_cgroup_procs("in_b", "b"), Op.move_all_tasks("a", "b"),
                  Op.stop_cgroup("bad")], hold=HoldSpec.fixed(0)),
        Step(ops=[Op.clear_cpuset("b"), Op.remove_cgroup("b")], hold=HoldSpec.fixed(0)),
    ], captures=captures)
    assert ("set_cpuset", "a", (0, 1)) in log
    i = log.index(("clear_cpuset", "a"))  # the swap: a gets b's (none), b gets a's
    assert log[i + 1] == ("set_cpuset", "b", (0, 1))
    assert pinned == [(41, frozenset({3})), (42, frozenset({3})), (4201, frozenset({3}))]
    assert captures == {"in_b": [41, 42]}
    assert ("judge", "bad", None, (2,)) in log  # stop_cgroup judges at step 2
    # a's workers moved to b: judged as b, at b's removal in step 3, b's cpuset cleared first
    j = log.index(("clear_cpuset", "b"))
    assert log[j + 1:j + 4] == [("collect", 0), ("judge", "b", None, (3,)), ("remove", "b")]
    assert not any(e[:2] == ("judge", "a") for e in log)
    assert not result.passed and result.details == ["bad unfair"]
    assert cg.live == set()


def test_an_op_that_raises_still_kills_workers_thaws_and_removes_cgroups(
        ctx: Ctx, log: list[Any]) -> None:
    cg: FakeCgroups = ctx.cgroups  # type: ignore[assignment]
    cg.fail_on = "move_tasks"
    with pytest.raises(OSError, match="move_tasks failed"):
        execute_steps(ctx, [
            Step(ops=[Op.add_cgroup("x"), Op.add_cgroup("y"), Op.spawn("x"),
                      Op.freeze_cgroup("x")], hold=HoldSpec.fixed(0)),
            Step(ops=[Op.move_all_tasks("x", "y")], setup=[CgroupDef("s")]),
        ])
    assert cg.live == set()
    assert ("unfreeze", "x") in log
    assert [e for e in log if e[0] == "kill"] == [("kill", 0)]
    assert not any(e[0] == "judge" for e in log)


@pytest.mark.parametrize(("steps", "match"), [
    ([], "got no steps"),
    ([Step.with_op(Op.stop_cgroup("ghost"), HoldSpec.FULL)],
     "refers to cgroup 'ghost', which does not exist at that point: no earlier op adds it"),
    ([Step(ops=[Op.freeze_cgroup("a")], setup=[CgroupDef("a")])],
     "this step's setup, which is applied after the step's ops"),
    ([Step(setup=[CgroupDef("a")]), Step.with_op(Op.freeze_cgroup("a"), HoldSpec.FULL)],
     "'a', which does not exist"),  # setup cgroups end with their step
    ([Step(ops=[Op.add_cgroup("a"), Op.remove_cgroup("a"), Op.spawn("a")])],
     "'a', which does not exist"),
    ([Step(ops=[Op.add_cgroup("a"), Op.add_cgroup("a")])], "already exists"),
    ([Step.with_op(Op.add_cgroup("a"), HoldSpec.FULL), Step(setup=[CgroupDef("a")])],
     "setup cgroup 'a' already exists"),
    ([Step(ops=[Op.add_cgroup("a"), Op.capture_cgroup_procs("t", "a"),
                Op.capture_cgroup_procs("t", "a")])], "capture tag 't' is used twice"),
    ([Step(ops=[Op.add_cgroup("a"), Op.set_cpuset("a", CpusetSpec.llc(5))])],
     "LLC 5 does not exist"),
    ([Step(setup=[CgroupDef("a"), CgroupDef("a")])], "'a' is defined twice"),
])
def test_bad_step_lists_fail_before_anything_happens(ctx: Ctx, log: list[Any],
                                                     steps: list[Step], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        execute_steps(ctx, steps)
    assert log == []


def test_loop_step_ops_may_use_the_steps_setup_and_factory_steps_are_not_name_checked(
        ctx: Ctx, log: list[Any]) -> None:
    execute_steps(ctx, [Step(ops=[Op.freeze_cgroup("a")], setup=[CgroupDef("a")],
                             hold=HoldSpec.loop_at(10))])
    execute_steps(ctx, [Step(ops=[Op.stop_cgroup("f")],
                             setup=lambda c: [CgroupDef("f")], hold=HoldSpec.loop_at(10))])
    assert ("freeze", "a") in log and ("judge", "f", None, (1, 1)) in log


# -- on this host's real cgroup2 -----------------------------------------------------------


def cpu_ns(pid: int) -> int:
    """Nanoseconds `pid` has run (schedstat field 1)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


class RecordingChecks:
    """The real checks, keeping each judged cgroup's reports."""

    def __init__(self, real: Assert) -> None:
        self.real = real
        self.reports: dict[str, list[WorkerReport]] = {}

    def assert_cgroup(self, reports: Sequence[WorkerReport], cpuset: Any,
                      *, name: str = "") -> AssertResult:
        self.reports[name] = list(reports)
        return self.real.assert_cgroup(reports, cpuset, name=name)


def test_real_frozen_worker_makes_no_progress_while_frozen() -> None:
    if os.geteuid() != 0:
        pytest.skip("real cgroup tests need root")
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount on this host")
    parent = f"ktstr-unit-steps-{os.getpid()}"
    captures: dict[str, list[int]] = {}
    samples: dict[str, dict[int, int]] = {}

    def sample(tag: str) -> Any:
        def probe(c: Ctx) -> list[CgroupDef]:  # runs after the step's ops
            pids = captures["frz"] + captures["ctl"]
            samples[tag] = {p: cpu_ns(p) for p in pids}
            samples[tag][0] = time.monotonic_ns()
            return []
        return probe

    with Ctx.create(checks=Assert.default_checks(), duration=2.0, settle=0.0,
                    cgroup_root=mount, parent=parent) as ctx:
        checks = RecordingChecks(ctx.checks)
        ctx.checks = checks  # type: ignore[assignment]
        result = execute_steps(ctx, [
            Step(ops=[Op.add_cgroup("frz"), Op.add_cgroup("ctl"),
                      Op.spawn("frz", SpinWait(), 1), Op.spawn("ctl", SpinWait(), 1),
                      Op.capture_cgroup_procs("ctl", "ctl")], hold=HoldSpec.fixed(0.3)),
            Step(ops=[Op.freeze_cgroup("frz"), Op.capture_cgroup_procs("frz", "frz")],
                 setup=sample("frozen"), hold=HoldSpec.fixed(0.8)),
            Step(setup=sample("still_frozen"), hold=HoldSpec.fixed(0)),
            Step(ops=[Op.unfreeze_cgroup("frz")], hold=HoldSpec.fixed(0.3)),
            Step(ops=[Op.stop_cgroup("frz"), Op.stop_cgroup("ctl")], hold=HoldSpec.fixed(0)),
        ], captures=captures)
        assert ctx.cgroups.fs.children(parent) == []
    assert not (mount / parent).exists()

    (frz_pid,), (ctl_pid,) = captures["frz"], captures["ctl"]
    before, after = samples["frozen"], samples["still_frozen"]
    assert after[0] - before[0] >= 0.75e9  # the frozen window really lasted
    assert after[frz_pid] - before[frz_pid] < 5_000_000  # frozen: no CPU time at all
    assert after[ctl_pid] - before[ctl_pid] > 100_000_000  # the control kept running
    frz, ctl = checks.reports["frz"], checks.reports["ctl"]
    assert [r.step for r in frz + ctl] == [5, 5]
    assert frz[0].tid == frz_pid and frz[0].work_units > 0  # it ran before and after
    assert frz[0].max_gap_ms >= 750 > ctl[0].max_gap_ms  # the freeze shows as its gap
    assert [c.name for c in result.stats.cgroups] == ["frz", "ctl"]


class FakeSlot:
    """The run's scheduler slot as the scheduler ops see it."""

    def __init__(self, log: list[tuple[Any, ...]], staged: set[str]) -> None:
        self.log, self.staged, self.name = log, frozenset(staged), None
        self.pid: int | None = None

    def attach(self, sched: Any) -> None:
        self.log.append(("attach", sched.name))
        self.name, self.pid = sched.name, 7

    def detach(self) -> None:
        self.log.append(("detach",))
        self.name, self.pid = None, None

    def restart(self) -> None:
        self.log.append(("restart",))

    def replace(self, sched: Any) -> None:
        self.log.append(("replace", sched.name))
        self.name = sched.name


def test_scheduler_ops_switch_the_slot_in_step_order(ctx: Ctx, log: list[Any]) -> None:
    simple, central = Scheduler("scx_simple"), Scheduler("scx_central")
    ctx.scheduler = FakeSlot(log, {"scx_simple", "scx_central"})
    execute_steps(ctx, [
        Step(ops=[Op.attach_scheduler(simple)], setup=[CgroupDef("a", workers=1)],
             hold=HoldSpec.frac(0.25)),
        Step(ops=[Op.restart_scheduler(), Op.replace_scheduler(central)],
             hold=HoldSpec.frac(0.25)),
        Step(ops=[Op.detach_scheduler()], hold=HoldSpec.frac(0.25)),
    ])
    switches = [e for e in log if e[0] in ("attach", "detach", "restart", "replace", "spawn")]
    assert switches == [("attach", "scx_simple"), ("spawn", "a", 1), ("restart",),
                        ("replace", "scx_central"), ("detach",)]
    assert ctx.sched_pid is None


def test_scheduler_ops_are_checked_before_anything_runs(ctx: Ctx, log: list[Any]) -> None:
    steps = [Step.with_defs([CgroupDef("a")], HoldSpec.frac(0.5)),
             Step.with_op(Op.replace_scheduler(Scheduler("scx_central")), HoldSpec.frac(0.5))]
    with pytest.raises(ConfigError, match="needs the run's scheduler slot"):
        execute_steps(ctx, steps)
    ctx.scheduler = FakeSlot(log, {"scx_simple"})
    with pytest.raises(ConfigError, match=r"step 2: .*scx_central is not staged.*"
                                          r"\(staged: scx_simple\).*staged_schedulers"):
        execute_steps(ctx, steps)
    assert log == []


def test_eevdf_is_not_attached_but_detached_to() -> None:
    with pytest.raises(ConfigError, match=r"EEVDF.*detach_scheduler"):
        Op.attach_scheduler(Scheduler.EEVDF)
    with pytest.raises(ConfigError, match="not a Scheduler"):
        Op.replace_scheduler("scx_simple")  # type: ignore[arg-type]


def test_setup_with_an_affinity_intent_resolves_it_on_the_effective_cpuset(
        ctx: Ctx, log: list[Any]) -> None:
    execute_steps(ctx, [Step.with_defs([CgroupDef("a", workers=2, cpuset=CpusetSpec.llc(0),
                                                  affinity=AffinityIntent.single_cpu())])])
    assert log[:3] == [("create", "a"), ("set_cpuset", "a", (0, 1)), ("effective_cpus", "a")]
    (handle,) = FakeHandle.spawned
    assert handle.cfg.affinity == (frozenset({1}), frozenset({1}))


def test_an_affinity_intent_the_topology_cannot_meet_fails_validation(ctx: Ctx,
                                                                      log: list[Any]) -> None:
    with pytest.raises(ConfigError, match=r"'s': affinity smt_sibling_pair\(\) needs SMT"):
        execute_steps(ctx, [Step.hold(HoldSpec.fixed(1)), Step.with_defs(
            [CgroupDef("s", affinity=AffinityIntent.smt_sibling_pair())])])
    assert log == []  # refused before the first step ran


class FakeHost:
    """The snapshot side of the host as Op.snapshot sees it (SnapshotControl)."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def capture(self, name: str) -> dict[str, Any]:
        self.log.append(("snapshot", name))
        return {"name": name, "frozen_ms": 2.0}

    def get(self, name: str) -> dict[str, Any] | None:
        return None

    def names(self) -> list[str]:
        return []

    def watch(self, symbol: str) -> dict[str, Any]:
        self.log.append(("watch", symbol))
        return {"symbol": symbol, "slot": 1, "address": 0xffffffff81000000}


def test_snapshot_ops_capture_in_step_order(ctx: Ctx, log: list[Any]) -> None:
    steps = [Step(ops=[Op.add_cgroup("a"), Op.snapshot("a0")], hold=HoldSpec.frac(0.5)),
             Step(ops=[Op.snapshot("b")], hold=HoldSpec.frac(0.5))]
    with pytest.raises(ConfigError, match=r"Op.snapshot\('a0'\) needs a host"):
        execute_steps(ctx, steps)
    assert log == []
    ctx.snapshot_control = FakeHost(log)
    execute_steps(ctx, steps)
    assert [e for e in log if e[0] in ("create", "snapshot")][-2:] == [("snapshot", "a0"),
                                                                       ("snapshot", "b")]


def test_watch_snapshot_arms_in_order_and_at_most_three_per_scenario(ctx: Ctx,
                                                                     log: list[Any]) -> None:
    ctx.snapshot_control = FakeHost(log)
    steps = [Step(ops=[Op.watch_snapshot("jiffies_64"), Op.snapshot("a")],
                  hold=HoldSpec.frac(0.5)),
             Step(ops=[Op.watch_snapshot("jiffies_64"), Op.watch_snapshot("vm_swappiness")],
                  hold=HoldSpec.frac(0.5))]
    execute_steps(ctx, steps)
    assert [e for e in log if e[0] in ("watch", "snapshot")] == [
        ("watch", "jiffies_64"), ("snapshot", "a"), ("watch", "jiffies_64"),
        ("watch", "vm_swappiness")]
    log.clear()
    four = [Step(ops=[Op.watch_snapshot(s) for s in ("a", "b", "c")],
                 hold=HoldSpec.frac(0.5)),
            Step(ops=[Op.watch_snapshot("d")], hold=HoldSpec.frac(0.5))]
    with pytest.raises(ConfigError, match=r"step 2: Op.watch_snapshot\('d'\) would be watch "
                                          r"number 4 of the scenario \(a, b, c, d\); at most 3"):
        execute_steps(ctx, four)
    assert log == []  # refused before the first step ran


@pytest.mark.parametrize("bad", ["", "no such", "1abc", None, "a;b"])
def test_watch_snapshot_needs_a_symbol_name(bad: Any) -> None:
    with pytest.raises(ConfigError, match="is not a kernel symbol name; hint: name a kernel "
                                          "variable verbatim"):
        Op.watch_snapshot(bad)
