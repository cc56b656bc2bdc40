"""ktstr.system.fs: the one read/write policy, on files under tmp_path."""

from __future__ import annotations

import errno
import os
import pickle
import threading
import time
from pathlib import Path

import pytest

from ktstr.errors import SystemError_
from ktstr.system import fs


def test_read_text_missing_file_raises_enoent_naming_path(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "cgroup.procs"
    with pytest.raises(fs.SysIoError) as info:
        fs.read_text(path)
    assert info.value.errno == errno.ENOENT
    assert str(path) in str(info.value)
    assert "(ENOENT)" in str(info.value)
    assert "hint:" in str(info.value)
    assert isinstance(info.value, SystemError_)


def test_sys_io_error_pickles_with_its_fields() -> None:
    err = fs.SysIoError("cannot write", "/x/cgroup.procs", errno.EBUSY, "42")
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.errno, back.value, str(back)) == (
        "/x/cgroup.procs", errno.EBUSY, "42", "cannot write")


def test_read_optional_returns_none_only_for_missing(tmp_path: Path) -> None:
    assert fs.read_optional(tmp_path / "nope") is None
    (tmp_path / "yes").write_text("3\n")
    assert fs.read_optional(tmp_path / "yes") == "3\n"
    with pytest.raises(fs.SysIoError):  # a directory is not "missing"
        fs.read_optional(tmp_path)


def test_read_int_and_cpulist_parse_kernel_formats(tmp_path: Path) -> None:
    (tmp_path / "core_id").write_text("17\n")
    (tmp_path / "cpus").write_text("0-2,5,7-8\n")
    (tmp_path / "empty").write_text("\n")
    assert fs.read_int(tmp_path / "core_id") == 17
    assert fs.read_cpulist(tmp_path / "cpus") == frozenset({0, 1, 2, 5, 7, 8})
    assert fs.read_cpulist(tmp_path / "empty") == frozenset()


def test_read_int_rejects_garbage_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "level").write_text("Unified\n")
    with pytest.raises(fs.SysIoError, match=r"level: 'Unified' is not an integer"):
        fs.read_int(tmp_path / "level")


def test_write_text_writes_value_in_one_write(tmp_path: Path) -> None:
    target = tmp_path / "cpuset.cpus"
    target.write_text("")
    fs.write_text(target, "0-3")
    assert target.read_text() == "0-3"
    fs.write_text(target, "1", timeout=None)
    assert target.read_text() == "1"


def test_write_text_never_creates_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "cg_0" / "cgroup.procs"
    with pytest.raises(fs.SysIoError) as info:
        fs.write_text(target, "123")
    assert info.value.errno == errno.ENOENT
    assert info.value.value == "123"
    msg = str(info.value)
    assert msg.startswith(f"cannot write '123' to {target} (ENOENT): the task or cgroup is gone")
    assert not target.exists()


@pytest.mark.parametrize(("name", "err", "expected"), [
    ("cgroup.procs", errno.EBUSY, "has children with subtree_control set"),
    ("cgroup.procs", errno.ESRCH, "no task with pid 77 (it exited)"),
    ("cgroup.subtree_control", errno.ENOENT, "not in the parent's cgroup.controllers"),
    ("cpuset.cpus", errno.EINVAL, "outside the parent's cpuset.cpus.effective"),
    ("cgroup.procs", errno.EINVAL, "kernel thread"),
])
def test_write_errors_carry_file_specific_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, err: int,
        expected: str) -> None:
    target = tmp_path / "cg_0" / name
    target.parent.mkdir()
    target.write_text("")

    def failing_write(fd: int, data: bytes) -> int:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr("ktstr.system.fs.os.write", failing_write)
    with pytest.raises(fs.SysIoError) as info:
        fs.write_text(target, "77")
    assert info.value.errno == err
    assert expected in str(info.value)
    assert f"({errno.errorcode[err]})" in str(info.value)
    assert "hint:" in str(info.value)


def test_write_text_times_out_when_the_write_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "blocks"
    os.mkfifo(fifo)  # open(O_WRONLY) blocks in the kernel until a reader appears
    start = time.monotonic()
    try:
        with pytest.raises(fs.SysIoError, match=r"still blocked in the kernel after 0.2s"):
            fs.write_text(fifo, "1", timeout=0.2)
        assert time.monotonic() - start < 2.0
    finally:  # release the blocked helper thread
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        deadline = time.monotonic() + 2
        while any(t.name.startswith("ktstr-write") for t in threading.enumerate()) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        os.close(reader)


def test_make_dir_exist_ok_and_remove_dir(tmp_path: Path) -> None:
    fs.make_dir(tmp_path / "cg")
    fs.make_dir(tmp_path / "cg")
    with pytest.raises(fs.SysIoError, match="EEXIST"):
        fs.make_dir(tmp_path / "cg", exist_ok=False)
    (tmp_path / "cg" / "f").write_text("")
    with pytest.raises(fs.SysIoError) as info:
        fs.remove_dir(tmp_path / "cg")
    assert info.value.errno == errno.ENOTEMPTY
    (tmp_path / "cg" / "f").unlink()
    fs.remove_dir(tmp_path / "cg")
    assert not (tmp_path / "cg").exists()


def test_wait_until_true_at_once_and_false_after_timeout(tmp_path: Path) -> None:
    events = tmp_path / "cgroup.events"
    events.write_text("populated 1\nfrozen 0\n")
    assert fs.wait_until(events, lambda t: "populated 1" in t, timeout=1.0)
    start = time.monotonic()
    assert not fs.wait_until(events, lambda t: "populated 0" in t, timeout=0.3)
    assert 0.25 < time.monotonic() - start < 2.0


def test_wait_until_sees_a_later_change(tmp_path: Path) -> None:
    events = tmp_path / "cgroup.events"
    events.write_text("frozen 0\n")
    timer = threading.Timer(0.1, lambda: events.write_text("frozen 1\n"))
    timer.start()
    try:
        assert fs.wait_until(events, lambda t: "frozen 1" in t, timeout=3.0)
    finally:
        timer.cancel()
