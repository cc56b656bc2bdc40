"""spawn_diverse: the work-type rotation, the IoSyncWrite worker count, the
handles' order, start and cleanup, with test_scenario_execute's fake workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_scenario_execute as fakes
from test_scenario_execute import FakeHandle

from ktstr import Ctx, spawn_diverse
from ktstr.errors import ConfigError
from ktstr.scenario.custom import diverse_configs
from ktstr.work import Bursty, IoSyncWrite, Mixed, SpinWait, YieldHeavy

ctx = fakes.ctx  # the fixture: fake cgroups and workers, workers_per_cgroup=3


@pytest.fixture
def cgroups(ctx: Ctx) -> Ctx:
    """`ctx` whose fake cgroup manager answers `exists` from what it created."""
    fake = ctx.cgroups
    fake.exists = lambda name: name in fake.live  # type: ignore[method-assign]
    return ctx


def test_the_rotation_is_fixed_and_wraps_and_io_always_gets_two_workers(ctx: Ctx) -> None:
    configs = diverse_configs(ctx, 7)
    assert [type(c.work) for c in configs] == [SpinWait, Bursty, IoSyncWrite, Mixed,
                                               YieldHeavy, SpinWait, Bursty]
    assert [c.workers for c in configs] == [3, 3, 2, 3, 3, 3, 3]
    ctx.workers_per_cgroup = 1
    assert [c.workers for c in diverse_configs(ctx, 3)] == [1, 1, 2]


def test_spawn_diverse_spawns_into_the_named_cgroups_in_order_and_starts_them(
        cgroups: Ctx) -> None:
    names = ["web", "db", "log"]
    for name in names:
        cgroups.cgroups.create(name)
    handles = spawn_diverse(cgroups, names)
    assert [h.cgroup_dir for h in handles] == [Path("/fake/ktstr") / n for n in names]
    assert [h.cfg.work.name for h in handles] == ["SpinWait", "Bursty", "IoSyncWrite"]
    assert [h.group_idx for h in handles] == [0, 1, 2]
    assert [h.events for h in handles] == [["start"]] * 3  # type: ignore[attr-defined]


def test_spawn_diverse_refuses_a_cgroup_that_does_not_exist(cgroups: Ctx) -> None:
    cgroups.cgroups.create("a")
    with pytest.raises(ConfigError, match=r"^spawn_diverse: cgroup 'b' does not exist; hint: "
                                          r"create it first with ctx.cgroups.create\('b'\)"):
        spawn_diverse(cgroups, ["a", "b"])
    assert FakeHandle.spawned == []


def test_a_failed_spawn_kills_the_workers_already_forked(cgroups: Ctx) -> None:
    for name in ("a", "b"):
        cgroups.cgroups.create(name)
    FakeHandle.fail_on_spawn = 1
    with pytest.raises(OSError, match="fork failed"):
        spawn_diverse(cgroups, ["a", "b"])
    assert [h.events for h in FakeHandle.spawned] == [["kill"]]
    assert cgroups.cgroups.live == {"a", "b"}  # type: ignore[attr-defined]  # not ours
