"""CgroupManager, Ctx, execute_defs and setup_cgroups on this host's real cgroup2.

Everything happens under a scratch parent `ktstr-unit-<pid>` that the manager
creates and removes. Root is needed; cpuset steps run only where cgroup2 offers
the cpuset controller (in the VM), else the manager must say it cannot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import spinner

from ktstr.checks import Assert
from ktstr.errors import SystemError_
from ktstr.scenario import (
    CgroupDef,
    CgroupManager,
    CpusetSpec,
    Ctx,
    TestTopology,
    dfl_wl,
    execute_defs,
    setup_cgroups,
)
from ktstr.system.cgroup import CgroupFs, cgroup2_mount


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def mount() -> Path:
    if os.geteuid() != 0:
        pytest.skip("real cgroup tests need root")
    found = cgroup2_mount()
    if found is None:
        pytest.skip("no cgroup2 mount on this host")
    return found


@pytest.fixture
def manager(mount: Path) -> Iterator[CgroupManager]:
    parent = f"ktstr-unit-{os.getpid()}"
    mgr = CgroupManager(CgroupFs(mount), parent,
                        topo=TestTopology.from_system())
    try:
        yield mgr
    finally:
        mgr.close()
        assert not (mount / parent).exists()



def test_manager_names_are_relative_to_its_parent(manager: CgroupManager, mount: Path) -> None:
    assert not manager.exists("cg_0")
    path = manager.create("cg_0")
    assert path == mount / manager.parent / "cg_0" == manager.path("cg_0")
    assert path.is_dir() and manager.exists("cg_0")
    manager.create("cg_0/inner")
    manager.remove("cg_0")
    assert not path.exists() and not manager.exists("cg_0")


def test_manager_moves_freezes_and_close_kills_leftovers(manager: CgroupManager) -> None:
    manager.create("a")
    manager.create("b")
    pid = spinner()
    try:
        manager.move_task("a", pid)
        assert manager.procs("a") == [pid]
        assert manager.move_tasks("a", "b") == 1
        assert manager.procs("b") == [pid]
        manager.freeze("b")
        assert manager.fs.events(f"{manager.parent}/b")["frozen"] == 1
        manager.unfreeze("b")
        manager.close()  # the worker is still in b: close must kill it, then remove all
        status = os.waitpid(pid, 0)[1]
        assert os.WIFSIGNALED(status)
        assert not manager.parent_path.exists()
    finally:
        if alive(pid):
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_manager_close_leaves_preexisting_cgroups(mount: Path) -> None:
    parent = f"ktstr-unit-pre-{os.getpid()}"
    cg = CgroupFs(mount)
    cg.create(f"{parent}/kept")
    try:
        mgr = CgroupManager(cg, parent)
        mgr.create("kept")
        mgr.create("mine")
        mgr.close()
        assert cg.exists(f"{parent}/kept") and not cg.exists(f"{parent}/mine")
    finally:
        cg.remove(parent)


def test_manager_set_cpuset(manager: CgroupManager) -> None:
    manager.create("pinned")
    spec = CpusetSpec.exact([max(manager.topo.all_cpus)])  # type: ignore[union-attr]
    if "cpuset" not in manager.controllers:
        with pytest.raises(SystemError_, match="cpuset controller is not available"):
            manager.set_cpuset("pinned", spec)
        return
    cpus = manager.set_cpuset("pinned", spec)
    assert manager.effective_cpus("pinned") == cpus
    manager.clear_cpuset("pinned")
    assert manager.effective_cpus("pinned") == manager.topo.all_cpus  # type: ignore[union-attr]


def test_execute_defs_runs_real_workers_and_removes_cgroups(mount: Path) -> None:
    parent = f"ktstr-unit-x-{os.getpid()}"
    with Ctx.create(checks=Assert.default_checks(), duration=0.3, settle=0.0,
                    workers_per_cgroup=1, cgroup_root=mount, parent=parent) as ctx:
        defs = [CgroupDef("spin_a"), CgroupDef("spin_b", workers=2)]
        if "cpuset" in ctx.cgroups.controllers:
            defs.append(CgroupDef("pinned", cpuset=CpusetSpec.llc(0)))
        start = time.monotonic()
        result = execute_defs(ctx, defs)
        assert time.monotonic() - start >= 0.3
        names = [c.name for c in result.stats.cgroups]
        assert names == [d.name for d in defs]
        assert [c.num_workers for c in result.stats.cgroups][:2] == [1, 2]
        assert all(c.total_work_units > 0 for c in result.stats.cgroups)  # they really ran
        assert ctx.cgroups.fs.children(parent) == []  # execute_defs removed its cgroups
    assert not (mount / parent).exists()


def test_setup_cgroups_body_error_still_removes_everything(mount: Path) -> None:
    parent = f"ktstr-unit-s-{os.getpid()}"
    pids: list[int] = []
    with Ctx.create(checks=Assert.default_checks(), duration=0.2, workers_per_cgroup=1,
                    cgroup_root=mount, parent=parent) as ctx:
        with pytest.raises(RuntimeError, match="mid-run"), \
                setup_cgroups(ctx, 2, dfl_wl(ctx)) as handles:
            pids = [p for h in handles for p in h.pids]
            assert ctx.cgroups.procs("cg_0") == handles[0].pids
            assert ctx.cgroups.procs("cg_1") == handles[1].pids
            raise RuntimeError("mid-run")
        assert ctx.cgroups.fs.children(parent) == []
        assert pids and not any(alive(p) for p in pids)
    assert not (mount / parent).exists()
