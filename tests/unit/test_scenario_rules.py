"""Every validation rule of a scenario (steps, holds, ops, backdrops), one test each or
one parametrized case each, with the message it must give.

The rules, in order: a Step's hold is validated when the Step is built
(HoldSpec.validate's messages, tested in test_scenario_hold.py); op constructors
check their arguments; a step list is checked whole before anything is created
(no steps; not a Step; not a Backdrop; unknown, removed, step-local-elsewhere
or own-setup-before-ops cgroups; duplicate names in a step, in a backdrop,
between setup and op-added or backdrop cgroups; re-adding a live cgroup;
capture tags used twice, across the backdrop too; cpusets and affinities not on
this topology; spawn counts that are not a multiple of the work type's group
size; spawning into a cgroup frozen at that point; a loop's ops checked again on
what their first pass left). Rules that depend on a setup function's output
are checked when it runs. Backdrop: extend_ops APPENDS.
"""

from __future__ import annotations

from typing import Any

import pytest
import test_scenario_steps as fakes
from test_scenario_steps import FakeCgroups, FakeHandle

from ktstr import Backdrop, CgroupDef, CpusetSpec, Ctx, HoldSpec, Op, Step, execute_steps, work
from ktstr.errors import ConfigError

# The fake cgroups, workers, checks and clock of test_scenario_steps, as fixtures here too
# (pytest registers a fixture under its own name: ctx, log, clock).
ctx, log, clock = fakes.ctx, fakes.log, fakes.clock


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(("hold", "match"), [
    (HoldSpec.frac(0), r"^Step: HoldSpec::Frac\(0\) must be > 0.0; negative values panic"),
    (HoldSpec.frac(-0.5), r"^Step: HoldSpec::Frac\(-0.5\) must be > 0.0"),
    (HoldSpec.frac(float("nan")), r"^Step: HoldSpec::Frac\(NaN\) is not finite \(NaN/Inf\)"),
    (HoldSpec.frac(float("inf")), r"^Step: HoldSpec::Frac\(inf\) is not finite"),
    (HoldSpec.loop_at(0), r"^Step: HoldSpec::Loop \{ interval: Duration::ZERO \} would "
                          "busy-spin the deadline check without yielding; use a non-zero"),
])
def test_a_step_refuses_an_invalid_hold_when_built(hold: HoldSpec, match: str) -> None:
    for build in (lambda: Step(hold=hold), lambda: Step.hold(hold),
                  lambda: Step.with_op(Op.add_cgroup("a"), hold),
                  lambda: Step.with_defs([CgroupDef("a")], hold), lambda: Step().set_hold(hold)):
        with pytest.raises(ConfigError, match=match):
            build()


def test_a_step_accepts_fixed_zero_and_tiny_positive_holds() -> None:
    assert Step(hold=HoldSpec.fixed(0)).hold == HoldSpec.fixed(0)
    assert Step(hold=HoldSpec.frac(1e-9)).hold.value == 1e-9
    assert Step(hold=HoldSpec.loop_at(1e-3)).hold.is_loop


NAMED = [
    ("Op.add_cgroup:", lambda n: Op.add_cgroup(n)),
    ("Op.remove_cgroup:", lambda n: Op.remove_cgroup(n)),
    ("Op.set_cpuset:", lambda n: Op.set_cpuset(n, CpusetSpec.llc(0))),
    ("Op.clear_cpuset:", lambda n: Op.clear_cpuset(n)),
    ("Op.swap_cpusets:", lambda n: Op.swap_cpusets(n, "b")),
    ("Op.swap_cpusets:", lambda n: Op.swap_cpusets("a", n)),
    ("Op.spawn:", lambda n: Op.spawn(n)),
    ("Op.stop_cgroup:", lambda n: Op.stop_cgroup(n)),
    ("Op.set_affinity:", lambda n: Op.set_affinity(n, CpusetSpec.exact([0]))),
    ("Op.move_all_tasks:", lambda n: Op.move_all_tasks(n, "b")),
    ("Op.move_all_tasks:", lambda n: Op.move_all_tasks("a", n)),
    ("Op.freeze_cgroup:", lambda n: Op.freeze_cgroup(n)),
    ("Op.unfreeze_cgroup:", lambda n: Op.unfreeze_cgroup(n)),
    ("Op.capture_cgroup_procs:", lambda n: Op.capture_cgroup_procs("t", n)),
]


@pytest.mark.parametrize(("what", "build"), NAMED)
@pytest.mark.parametrize("bad", ["", None, 3])
def test_every_op_refuses_a_cgroup_name_that_is_not_a_non_empty_string(
        what: str, build: Any, bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{what} {bad!r} is not a cgroup name; hint:"):
        build(bad)


def test_op_arguments_are_checked_when_built() -> None:
    with pytest.raises(ConfigError, match=r"^Op.set_affinity: \[0\] is not a CpusetSpec"):
        Op.set_affinity("a", [0])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^Op.spawn: work 'SpinWait' is not a work type"):
        Op.spawn("a", "SpinWait")  # type: ignore[arg-type]
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigError, match=r"is not a positive count; hint: spawn at least"):
            Op.spawn("a", work.SpinWait(), bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^Op.spawn: workers=3 is not a multiple of "
                                          r"FutexPingPong's group size 2; hint: use workers=2"):
        Op.spawn("a", work.FutexPingPong(), 3)
    assert Op.spawn("a", work.FutexPingPong(), 4).workers == 4
    with pytest.raises(ConfigError, match=r"swaps a cgroup with itself, which changes nothing"):
        Op.swap_cpusets("a", "a")
    with pytest.raises(ConfigError, match=r"moves a cgroup's tasks into itself; hint:"):
        Op.move_all_tasks("a", "a")
    with pytest.raises(ConfigError, match=r"^Op.capture_cgroup_procs: tag '' is empty"):
        Op.capture_cgroup_procs("", "a")


def test_backdrop_is_frozen_and_extend_ops_appends_unlike_step_set_ops() -> None:
    b = Backdrop().push_cgroup(CgroupDef("x")).extend_ops([Op.add_cgroup("y")])
    b2 = b.extend_ops([Op.add_cgroup("z")]).push_cgroup(CgroupDef("w"))
    assert b.ops == (Op.add_cgroup("y"),) and b.names == {"x"}  # b itself unchanged
    assert b2.ops == (Op.add_cgroup("y"), Op.add_cgroup("z"))  # appended
    assert [d.name for d in b2.cgroups] == ["x", "w"]
    s = Step(ops=[Op.add_cgroup("y")])
    assert s.set_ops([Op.add_cgroup("z")]).ops == (Op.add_cgroup("z"),)  # replaced
    assert Backdrop(cgroups=[CgroupDef("x")]) == Backdrop((CgroupDef("x"),))  # lists -> tuples
    with pytest.raises(AttributeError):
        b.ops = ()  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"^Backdrop: cgroup 'x' is declared twice"):
        b.push_cgroup(CgroupDef("x"))
    with pytest.raises(ConfigError, match=r"^Backdrop: 'x' is not a CgroupDef"):
        Backdrop(cgroups=["x"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"^Backdrop: 'op' is not an Op"):
        Backdrop(ops=["op"])  # type: ignore[list-item]


# -- the whole list, before anything runs --------------------------------------------------


HELD = HoldSpec.fixed(0)
BAD_LISTS = [
    ("no steps", [], None, r"^execute_steps got no steps; hint:"),
    ("not a step", [Op.add_cgroup("a")], None, r"^step 1: AddCgroup\(name='a'\) is not a Step"),
    ("not a backdrop", [Step()], [CgroupDef("a")], r"backdrop \[.*\] is not a Backdrop"),
    ("unknown cgroup", [Step.with_op(Op.freeze_cgroup("ghost"), HELD)], None,
     r"^step 1: FreezeCgroup\(name='ghost'\) refers to cgroup 'ghost', which does not exist "
     r"at that point: no earlier op adds it; hint: add it with Op.add_cgroup\('ghost'\)"),
    ("own setup is applied after the ops",
     [Step(ops=[Op.set_cpuset("a", CpusetSpec.llc(0))], setup=[CgroupDef("a")])], None,
     "it is in this step's setup, which is applied after the step's ops"),
    ("a setup cgroup ends with its step (seed: set_cpuset needs a backdrop cgroup)",
     [Step(setup=[CgroupDef("a")], hold=HELD), Step.with_op(Op.clear_cpuset("a"), HELD)],
     None, r"^step 2: ClearCpuset\(cgroup='a'\) refers to cgroup 'a', which does not exist"),
    ("removed earlier", [Step(ops=[Op.add_cgroup("a"), Op.remove_cgroup("a")], hold=HELD),
                         Step.with_op(Op.spawn("a"), HELD)], None,
     r"^step 2: Spawn\(cgroup='a'.*'a', which does not exist"),
    ("re-added while alive", [Step(ops=[Op.add_cgroup("a")], hold=HELD),
                              Step(ops=[Op.add_cgroup("a")], hold=HELD)], None,
     r"^step 2: Op.add_cgroup\('a'\) but that cgroup already exists"),
    ("add_cgroup of a backdrop name", [Step(ops=[Op.add_cgroup("bg")])],
     Backdrop((CgroupDef("bg"),)), r"Op.add_cgroup\('bg'\) but that cgroup already exists"),
    ("setup reuses a backdrop name", [Step(setup=[CgroupDef("bg")])],
     Backdrop((CgroupDef("bg"),)),
     r"^step 1: setup cgroup 'bg' already exists \(a backdrop cgroup, or added by"),
    ("setup reuses an op-added name", [Step(ops=[Op.add_cgroup("a")], hold=HELD),
                                       Step(setup=[CgroupDef("a")])], None,
     r"^step 2: setup cgroup 'a' already exists"),
    ("duplicate defs in one step", [Step(setup=[CgroupDef("a"), CgroupDef("a")])], None,
     r"^cgroup 'a' is defined twice in one scenario"),
    ("capture tag twice", [Step(ops=[Op.add_cgroup("a"), Op.capture_cgroup_procs("t", "a")],
                                hold=HELD),
                           Step(ops=[Op.capture_cgroup_procs("t", "a")], hold=HELD)], None,
     r"^step 2: capture tag 't' is used twice"),
    ("capture tag of the backdrop reused", [Step(ops=[Op.capture_cgroup_procs("t", "bg")])],
     Backdrop((CgroupDef("bg"),), (Op.capture_cgroup_procs("t", "bg"),)),
     r"^step 1: capture tag 't' is used twice"),
    ("cpuset not on this topology", [Step(ops=[Op.add_cgroup("a"),
                                               Op.set_cpuset("a", CpusetSpec.llc(5))])],
     None, "LLC 5 does not exist"),
    ("affinity not on this topology", [Step(ops=[Op.add_cgroup("a"),
                                                 Op.set_affinity("a", CpusetSpec.numa(3))])],
     None, "node 3"),
    ("setup cpuset not on this topology", [Step(setup=[CgroupDef("a", cpuset=CpusetSpec.llc(2))])],
     None, "LLC 2 does not exist"),
    ("backdrop cpuset not on this topology", [Step()],
     Backdrop((CgroupDef("bg", cpuset=CpusetSpec.llc(9)),)), "LLC 9 does not exist"),
    ("backdrop op on an unknown cgroup", [Step()], Backdrop(ops=(Op.stop_cgroup("ghost"),)),
     r"^backdrop: StopCgroup\(name='ghost'\) refers to cgroup 'ghost', which does not exist"),
    ("default worker count not a multiple of the group size",
     [Step(ops=[Op.add_cgroup("a"), Op.spawn("a", work.WakeChain(depth=3))])], None,
     r"^step 1: Spawn\(.*\) would fork 2 workers, not a multiple of WakeChain's group size "
     r"3; hint: pass workers=3"),
    ("spawn into a frozen cgroup", [Step(ops=[Op.add_cgroup("a"), Op.freeze_cgroup("a")],
                                         hold=HELD),
                                    Step(ops=[Op.spawn("a")], hold=HELD)], None,
     r"^step 2: Spawn\(.*\) spawns into cgroup 'a', which is frozen at that point: its workers "
     r"would freeze before saying ready; hint: Op.unfreeze_cgroup\('a'\) first"),
    ("a loop re-adds a cgroup it never removes",
     [Step(ops=[Op.add_cgroup("a"), Op.spawn("a")], hold=HoldSpec.loop_at(0.5))], None,
     r"^step 1 \(the loop's second pass\): Op.add_cgroup\('a'\) but that cgroup already "
     r"exists; hint: use another name, or remove it first with Op.remove_cgroup"),
    ("a loop uses a cgroup its own pass removed",
     [Step(ops=[Op.freeze_cgroup("l"), Op.unfreeze_cgroup("l"), Op.remove_cgroup("l")],
           setup=[CgroupDef("l")], hold=HoldSpec.loop_at(0.5))], None,
     r"^step 1 \(the loop's second pass\): FreezeCgroup\(name='l'\) refers to cgroup 'l', "
     "which does not exist"),
    ("a loop spawns into what its previous pass froze",
     [Step(ops=[Op.spawn("l"), Op.freeze_cgroup("l")], setup=[CgroupDef("l")],
           hold=HoldSpec.loop_at(0.5))], None,
     r"^step 1 \(the loop's second pass\): Spawn\(.*\) spawns into cgroup 'l', which is "
     "frozen"),
    ("add_cgroup of a live name in a step whose setup is a function",
     [Step(ops=[Op.add_cgroup("a")], hold=HELD),
      Step(ops=[Op.add_cgroup("a")], setup=lambda c: [])], None,
     r"^step 2: Op.add_cgroup\('a'\) but that cgroup already exists"),
    ("spawn into a frozen backdrop cgroup", [Step(ops=[Op.spawn("bg")])],
     Backdrop((CgroupDef("bg"),), (Op.freeze_cgroup("bg"),)), r"which is frozen at that point"),
]


@pytest.mark.parametrize(("rule", "steps", "backdrop", "match"), BAD_LISTS,
                         ids=[c[0] for c in BAD_LISTS])
def test_a_bad_step_list_fails_before_anything_is_created(
        ctx: Ctx, log: list[Any], rule: str, steps: list[Step], backdrop: Any,
        match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        execute_steps(ctx, steps, backdrop=backdrop)
    assert log == [], rule


def test_what_the_rules_allow(ctx: Ctx, log: list[Any]) -> None:
    execute_steps(ctx, [
        Step(ops=[Op.freeze_cgroup("bg"), Op.unfreeze_cgroup("bg"), Op.spawn("bg", workers=1),
                  Op.add_cgroup("a"), Op.remove_cgroup("a"), Op.add_cgroup("a")], hold=HELD),
        Step(ops=[Op.set_cpuset("bg", CpusetSpec.llc(1))], setup=[CgroupDef("s")], hold=HELD),
        Step(setup=[CgroupDef("s")], hold=HELD),  # a step-local name is free again
        Step(ops=[Op.freeze_cgroup("l")], setup=[CgroupDef("l")], hold=HoldSpec.loop_at(10)),
        Step(setup=[CgroupDef("l")], hold=HELD),  # the loop's frozen setup cgroup ended
        Step(ops=[Op.add_cgroup("c"), Op.capture_cgroup_procs("every_pass", "c"),
                  Op.remove_cgroup("c")], hold=HoldSpec.loop_at(10)),  # a tag per pass: fine
    ], backdrop=Backdrop((CgroupDef("bg"),)))
    assert ("set_cpuset", "bg", (2, 3)) in log


def test_a_setup_function_reusing_a_persistent_name_fails_when_it_runs(
        ctx: Ctx, log: list[Any]) -> None:
    cg: FakeCgroups = ctx.cgroups  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"^step 1: setup cgroup 'bg' already exists \(a "
                                          r"backdrop cgroup, or added by Op.add_cgroup\)"):
        execute_steps(ctx, [Step.with_defs(lambda c: [CgroupDef("bg")])],
                      backdrop=Backdrop((CgroupDef("bg"),)))
    assert cg.live == set()  # the backdrop was set up, then cleaned up


# -- backdrop execution ---------------------------------------------------------------------


def test_backdrop_is_set_up_at_step_0_persists_and_is_judged_after_the_last_step(
        ctx: Ctx, log: list[Any]) -> None:
    steps_seen: list[int] = []
    backdrop = (Backdrop().push_cgroup(CgroupDef("bg", workers=1, cpuset=CpusetSpec.llc(0)))
                .extend_ops([Op.add_cgroup("extra"), Op.spawn("extra", workers=1)]))
    result = execute_steps(ctx, [
        Step(setup=lambda c: steps_seen.append(c.current_step) or [CgroupDef("s", workers=1)],
             hold=HELD),
        Step(ops=[Op.set_cpuset("bg", CpusetSpec.llc(1))], hold=HELD),
    ], backdrop=backdrop)
    assert result.passed
    assert log[:6] == [
        ("create", "bg"), ("set_cpuset", "bg", (0, 1)), ("spawn", "bg", 1), ("start", 0),
        ("create", "extra"), ("spawn", "extra", 1)]
    assert steps_seen == [1]
    assert ("judge", "s", None, (1,)) in log and ("remove", "s") in log
    assert ("judge", "bg", (2, 3), (2,)) in log  # judged at the end with its last cpuset
    assert ("judge", "extra", None, (2,)) in log
    cg: FakeCgroups = ctx.cgroups  # type: ignore[assignment]
    assert cg.live == set()
    assert [h.group_idx for h in FakeHandle.spawned] == [0, 1, 2]
