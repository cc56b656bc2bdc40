"""The one read/write policy for /proc, /sys and /sys/fs/cgroup.

Every file ktstr reads or writes under those trees goes through this module, so
encoding, whitespace, missing files and errno handling are decided once. Files
are small text files of the kernel's making: read whole, decoded as UTF-8 with
`surrogateescape` (a task's comm may hold any byte), written with a single
`write(2)` so one call is one command to the kernel (cgroup files parse each
write on its own).

Writes take a timeout because a cgroup write can block in the kernel (migration
under `cgroup_threadgroup_rwsem`, cpuset updates waiting for hotplug): the write
runs on a helper thread and the caller gets a `SysIoError` after `timeout`
seconds instead of hanging the run. The blocked thread cannot be cancelled; it is
a daemon thread and ends when the kernel lets it.

Errors: an `OSError` becomes `SysIoError` (a `ktstr.errors.SystemError_`) naming
the path, the value written, the errno name, what it means for that file and a
`hint:`. The hints are the kernel's reasons, e.g. `cgroup_migrate_vet_dst()`
returns EBUSY for a cgroup with controllers enabled for its children.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ktstr.errors import SystemError_
from ktstr.topology import parse_cpulist

#: Default seconds a write may block in the kernel before we give up on it.
WRITE_TIMEOUT_S = 5.0


class SysIoError(SystemError_):
    """A read or write of a kernel file failed.

    `errno` is the OS error number (0 for a timeout or a parse error), `value`
    the text written ("" for reads). Fields go through `super().__init__` so the
    error pickles across the worker fork and the guest/host channel.
    """

    def __init__(self, message: str, path: str, err: int = 0, value: str = "") -> None:
        super().__init__(message, path, err, value)
        self.message = message
        self.path = path
        self.errno = err
        self.value = value

    def __str__(self) -> str:
        return self.message


def _hint(op: str, path: Path, err: int, value: str) -> str:
    """Why `err` happened for this file, and the fix, as `reason; hint: fix`."""
    name = "" if op in ("remove", "create") else path.name
    if err == errno.EBUSY and name in ("cgroup.procs", "cgroup.threads"):
        return (f"{path.parent.name} has children with subtree_control set (a cgroup with "
                "controllers enabled for children may hold no tasks); "
                "hint: put tasks in a leaf cgroup")
    if err == errno.EBUSY and name == "cgroup.subtree_control":
        return (f"{path.parent.name} holds tasks of its own or its children use the "
                "controller; hint: move the tasks into a leaf cgroup first")
    if err == errno.EBUSY and op == "remove":
        return "the cgroup still has tasks or child cgroups; hint: remove or move those first"
    if err == errno.EEXIST and op == "create":
        return "it already exists; hint: remove it first or pick another name"
    if err == errno.ESRCH:
        return f"no task with pid {value.strip()} (it exited); hint: check the pid is alive"
    if err == errno.ENOENT and name == "cgroup.subtree_control":
        return ("a controller is not in the parent's cgroup.controllers (not enabled "
                "above, or bound to a cgroup v1 hierarchy); "
                "hint: enable it in every ancestor's cgroup.subtree_control")
    if err == errno.ENOENT:
        return ("the task or cgroup is gone (or the controller is not enabled for it); "
                "hint: check it still exists and its parent enables the controller")
    if err == errno.EINVAL and name.startswith("cpuset.cpus"):
        return ("a CPU is offline, does not exist, or is outside the parent's "
                "cpuset.cpus.effective; hint: pick CPUs from the parent's effective set")
    if err == errno.EINVAL and name in ("cgroup.procs", "cgroup.threads"):
        return ("the task cannot be moved (a kernel thread, or a malformed pid); "
                "hint: move only user tasks, one pid per write")
    if err in (errno.EACCES, errno.EPERM):
        return "permission denied; hint: run as root (or delegate the cgroup subtree)"
    if err == errno.EOPNOTSUPP:
        return ("the operation is not supported here (threaded cgroup or missing "
                "controller); hint: use a domain cgroup with the controller enabled")
    return "hint: see the kernel documentation for this file"


def _error(op: str, path: Path, err: OSError, value: str = "") -> SysIoError:
    code = err.errno or 0
    ename = errno.errorcode.get(code, str(code))
    shown = f" {value.strip()!r} to" if op == "write" else ""
    message = f"cannot {op}{shown} {path} ({ename}): {_hint(op, path, code, value)}"
    return SysIoError(message, str(path), code, value)


def read_text(path: Path | str) -> str:
    """The whole file as text, trailing newline kept (callers strip)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as err:
        raise _error("read", p, err) from err
    return data.decode("utf-8", "surrogateescape")


def read_optional(path: Path | str) -> str | None:
    """Like `read_text`, but None when the file does not exist (an optional knob)."""
    try:
        return read_text(path)
    except SysIoError as err:
        if err.errno in (errno.ENOENT, errno.ENODEV):
            return None
        raise


def read_int(path: Path | str) -> int:
    """A file holding one integer (e.g. `topology/core_id`)."""
    text = read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        raise SysIoError(f"cannot parse {path}: {text!r} is not an integer", str(path)) from None


def read_cpulist(path: Path | str) -> frozenset[int]:
    """A file in the kernel's CPU list format (`0-3,6`; empty for none)."""
    text = read_text(path)
    try:
        return parse_cpulist(text)
    except Exception:
        raise SysIoError(f"cannot parse {path}: {text.strip()!r} is not a CPU list",
                         str(path)) from None


def _write_once(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # as `echo >` does
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_text(path: Path | str, value: str, *, timeout: float | None = WRITE_TIMEOUT_S) -> None:
    """Write `value` with one write(2); give up after `timeout` seconds (None: wait).

    Raises `SysIoError` naming the path, value, errno and a hint.
    """
    p = Path(path)
    data = value.encode("utf-8", "surrogateescape")
    if timeout is None:
        try:
            _write_once(p, data)
        except OSError as err:
            raise _error("write", p, err, value) from err
        return
    failure: list[OSError] = []

    def run() -> None:
        try:
            _write_once(p, data)
        except OSError as err:
            failure.append(err)

    worker = threading.Thread(target=run, name=f"ktstr-write {p.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise SysIoError(
            f"cannot write {value.strip()!r} to {p}: still blocked in the kernel after "
            f"{timeout:g}s (cgroup migration or cpuset update waiting on a lock); "
            "hint: look for a stuck task or scheduler in the guest log (hung task reports)",
            str(p), 0, value)
    if failure:
        raise _error("write", p, failure[0], value) from failure[0]


def make_dir(path: Path | str, *, exist_ok: bool = True) -> None:
    """mkdir(2); in cgroupfs this creates a cgroup."""
    p = Path(path)
    try:
        os.mkdir(p)
    except FileExistsError:
        if not exist_ok:
            raise _error("create", p, FileExistsError(errno.EEXIST, "exists")) from None
    except OSError as err:
        raise _error("create", p, err) from err


def remove_dir(path: Path | str) -> None:
    """rmdir(2); in cgroupfs this removes an empty cgroup (EBUSY while it has tasks)."""
    p = Path(path)
    try:
        os.rmdir(p)
    except OSError as err:
        raise _error("remove", p, err) from err


def wait_until(path: Path | str, predicate: Callable[[str], bool], timeout: float) -> bool:
    """Wait until `predicate(text of path)` holds; False after `timeout` seconds.

    For kernfs files that notify on change (`cgroup.events`): the kernel wakes a
    poll(2) for POLLPRI when the file changes, so this waits on events, not on a
    timer. Polls are capped at 0.25 s and the file re-read, in case a change
    slipped in between a read and the poll.
    """
    p = Path(path)
    deadline = time.monotonic() + timeout
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise _error("read", p, err) from err
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        while True:
            try:
                text = os.pread(fd, 65536, 0).decode("utf-8", "surrogateescape")
            except OSError as err:
                raise _error("read", p, err) from err
            if predicate(text):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            poller.poll(min(remaining, 0.25) * 1000.0)
    finally:
        os.close(fd)
