"""ktstr.system.cgroup: path logic on a fake tree, then real cgroup2 on this host.

The real tests work in a scratch cgroup `ktstr-unit-<pid>` under the host's
cgroup2 mount and always remove it. They need root; cpuset tests also need the
cpuset controller in cgroup2 (a hybrid v1/v2 host binds it to v1: skipped).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import reap, spinner

from ktstr.errors import ConfigError
from ktstr.system import fs, proc
from ktstr.system.cgroup import CgroupFs, cgroup2_mount, check_cgroup_name

# -- fake tree -----------------------------------------------------------------


def fake_cgroup(root: Path, name: str, **files: str) -> Path:
    d = root / name if name else root
    d.mkdir(parents=True, exist_ok=True)
    defaults = {"cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.controllers":
                "cpuset cpu io memory", "cpuset.cpus": "", "cgroup.events": "populated 0\n"}
    for fname, text in {**defaults, **files}.items():
        (d / fname).write_text(text)
    return d


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".", "cgroup.procs", "cpuset.x",
                                 "x\ny", "x" * 256])
def test_check_cgroup_name_rejects(bad: str) -> None:
    with pytest.raises(ConfigError, match="hint:"):
        check_cgroup_name(bad)


@pytest.mark.parametrize("good", ["cg_0", "background-spinner", "a.b", "x" * 255])
def test_check_cgroup_name_accepts(good: str) -> None:
    check_cgroup_name(good)


def test_path_is_relative_to_root_and_checks_each_component(tmp_path: Path) -> None:
    cg = CgroupFs(tmp_path)
    assert cg.path("") == tmp_path
    assert cg.path("ktstr/cg_0") == tmp_path / "ktstr" / "cg_0"
    with pytest.raises(ConfigError):
        cg.path("ktstr/../../etc")
    with pytest.raises(ConfigError):
        cg.path("/abs")


def test_create_makes_missing_ancestors_and_is_idempotent(tmp_path: Path) -> None:
    cg = CgroupFs(tmp_path)
    assert cg.create("ktstr/cg_0") == tmp_path / "ktstr" / "cg_0"
    assert cg.create("ktstr/cg_0") == tmp_path / "ktstr" / "cg_0"
    assert cg.children("ktstr") == ["ktstr/cg_0"]
    assert cg.children("") == ["ktstr"]


def test_set_cpuset_writes_kernel_list_format(tmp_path: Path) -> None:
    fake_cgroup(tmp_path, "cg_0")
    cg = CgroupFs(tmp_path)
    cg.set_cpuset("cg_0", frozenset({5, 0, 1, 2}))
    assert (tmp_path / "cg_0" / "cpuset.cpus").read_text() == "0-2,5"
    assert cg.cpuset("cg_0") == frozenset({0, 1, 2, 5})
    cg.clear_cpuset("cg_0")
    assert cg.cpuset("cg_0") == frozenset()


def test_set_cpuset_empty_is_refused_before_writing(tmp_path: Path) -> None:
    fake_cgroup(tmp_path, "cg_0", **{"cpuset.cpus": "1"})
    with pytest.raises(ConfigError, match="clear_cpuset"):
        CgroupFs(tmp_path).set_cpuset("cg_0", frozenset())
    assert (tmp_path / "cg_0" / "cpuset.cpus").read_text() == "1"


def test_enable_controllers_writes_only_missing_ones_top_down(tmp_path: Path) -> None:
    fake_cgroup(tmp_path, "", **{"cgroup.subtree_control": "cpuset memory\n"})
    fake_cgroup(tmp_path, "ktstr")
    CgroupFs(tmp_path).enable_controllers("ktstr", ["cpuset", "cpu"])
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu"
    assert (tmp_path / "ktstr" / "cgroup.subtree_control").read_text() == "+cpuset +cpu"


def test_procs_events_and_controllers_parse(tmp_path: Path) -> None:
    fake_cgroup(tmp_path, "cg", **{"cgroup.procs": "12\n34\n",
                                   "cgroup.events": "populated 1\nfrozen 0\n"})
    cg = CgroupFs(tmp_path)
    assert cg.procs("cg") == [12, 34]
    assert cg.events("cg") == {"populated": 1, "frozen": 0}
    assert cg.controllers("cg") == frozenset({"cpuset", "cpu", "io", "memory"})


def test_remove_of_missing_cgroup_is_a_no_op_and_root_is_refused(tmp_path: Path) -> None:
    cg = CgroupFs(tmp_path)
    cg.remove("never_made")
    with pytest.raises(ConfigError, match="root cgroup"):
        cg.remove("")


def test_cgroup2_mount_found_in_mounts(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mounts").write_text(
        "proc /proc proc rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    assert cgroup2_mount(tmp_path) == Path("/sys/fs/cgroup/unified")
    (tmp_path / "self" / "mounts").write_text("proc /proc proc rw 0 0\n")
    assert cgroup2_mount(tmp_path) is None


# -- real cgroup2 ------------------------------------------------------------------


@pytest.fixture
def real() -> Iterator[tuple[CgroupFs, str]]:
    """A scratch cgroup on the host's cgroup2, removed (tasks killed) afterwards."""
    if os.geteuid() != 0:
        pytest.skip("real cgroup tests need root")
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount on this host")
    cg = CgroupFs(mount)
    scratch = f"ktstr-unit-{os.getpid()}"
    cg.create(scratch)
    try:
        yield cg, scratch
    finally:
        cg.remove(scratch, kill=True)
        assert not cg.exists(scratch)




def own_cgroup(pid: int | str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise AssertionError("no cgroup2 line")


def test_real_move_task_shows_in_procs_and_proc_cgroup(real: tuple[CgroupFs, str]) -> None:
    cg, scratch = real
    cg.create(f"{scratch}/a")
    pid = spinner()
    try:
        cg.move_task(f"{scratch}/a", pid)
        assert cg.procs(f"{scratch}/a") == [pid]
        assert own_cgroup(pid).endswith(f"/{scratch}/a")  # the kernel's own view
        assert cg.events(scratch)["populated"] == 1
        cg.create(f"{scratch}/b")
        assert cg.move_tasks(f"{scratch}/a", f"{scratch}/b") == 1
        assert cg.procs(f"{scratch}/a") == []
        assert own_cgroup(pid).endswith(f"/{scratch}/b")
    finally:
        reap(pid)


def test_real_move_exited_pid_raises_no_such_task(real: tuple[CgroupFs, str]) -> None:
    cg, scratch = real
    pid = spinner()
    reap(pid)
    with pytest.raises(fs.SysIoError) as info:
        cg.move_task(scratch, pid)
    assert info.value.errno == errno.ESRCH
    assert f"no task with pid {pid} (it exited)" in str(info.value)


def test_real_move_into_cgroup_with_subtree_control_is_ebusy(
        real: tuple[CgroupFs, str]) -> None:
    cg, scratch = real
    offered = sorted(cg.controllers(scratch))
    if not offered:
        pytest.skip("cgroup2 offers no controller here")
    inner = f"{scratch}/inner"
    cg.create(f"{inner}/leaf")
    cg.enable_controllers(inner, offered[:1])
    assert offered[0] in cg.subtree_control(inner)
    pid = spinner()
    try:
        with pytest.raises(fs.SysIoError) as info:
            cg.move_task(inner, pid)
        assert info.value.errno == errno.EBUSY
        assert "hint: put tasks in a leaf cgroup" in str(info.value)
        cg.move_task(f"{inner}/leaf", pid)  # the leaf takes it
    finally:
        reap(pid)


def test_real_freeze_stops_cpu_time_and_unfreeze_resumes(real: tuple[CgroupFs, str]) -> None:
    cg, scratch = real
    pid = spinner()
    try:
        cg.move_task(scratch, pid)
        cg.freeze(scratch)
        assert cg.events(scratch)["frozen"] == 1
        frozen_run, _, _ = proc.task_schedstat(pid)
        time.sleep(0.2)
        assert proc.task_schedstat(pid)[0] == frozen_run
        cg.unfreeze(scratch)
        assert cg.events(scratch)["frozen"] == 0
        time.sleep(0.2)
        assert proc.task_schedstat(pid)[0] > frozen_run
    finally:
        reap(pid)


def test_real_remove_kills_live_tasks_in_children(real: tuple[CgroupFs, str]) -> None:
    cg, scratch = real
    name = f"{scratch}/victim"
    cg.create(f"{name}/deeper")
    pids = [spinner(), spinner()]
    try:
        cg.move_task(name, pids[0])
        cg.move_task(f"{name}/deeper", pids[1])
        cg.remove(name)
        assert not cg.exists(name)
        for pid in pids:
            status = os.waitpid(pid, 0)[1]
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                reap(pid)


def test_real_remove_without_kill_moves_tasks_to_root(real: tuple[CgroupFs, str]) -> None:
    cg, scratch = real
    name = f"{scratch}/keep"
    cg.create(name)
    pid = spinner()
    try:
        cg.move_task(name, pid)
        cg.remove(name, kill=False)
        assert not cg.exists(name)
        assert own_cgroup(pid) == "/"
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)  # still alive
    finally:
        reap(pid)


def test_real_remove_never_kills_the_caller(real: tuple[CgroupFs, str]) -> None:
    cg, scratch = real
    home = own_cgroup("self")
    name = f"{scratch}/me"
    cg.create(name)
    try:
        cg.move_task(name, os.getpid())
        cg.remove(name, kill=True)
        assert not cg.exists(name)
        assert own_cgroup("self") == "/"
    finally:
        cg.move_task(home.lstrip("/"), os.getpid())


def test_real_set_cpuset_limits_effective_cpus_and_affinity(
        real: tuple[CgroupFs, str]) -> None:
    cg, scratch = real
    if "cpuset" not in cg.controllers(""):
        pytest.skip("cpuset is not offered by cgroup2 here (bound to cgroup v1)")
    cg.enable_controllers(scratch, ["cpuset"])
    name = f"{scratch}/pinned"
    cg.create(name)
    cpu = max(cg.effective_cpus(scratch))
    cg.set_cpuset(name, frozenset({cpu}))
    assert cg.effective_cpus(name) == frozenset({cpu})
    pid = spinner()
    try:
        cg.move_task(name, pid)
        assert os.sched_getaffinity(pid) == {cpu}
        cg.clear_cpuset(name)
        assert cg.effective_cpus(name) == cg.effective_cpus(scratch)
    finally:
        reap(pid)
