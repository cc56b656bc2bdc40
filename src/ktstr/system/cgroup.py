"""cgroup v2 through its filesystem: create, remove, cpusets, task moves, freezing.

`CgroupFs(root)` names cgroups by their path relative to the cgroup2 mount
(`""` is the root, `"ktstr/cg_0"` a grandchild), so unit tests point it at a
fake tree and the guest at `/sys/fs/cgroup`. Every file access goes through
`ktstr.system.fs`, which turns errno into errors that name the file and a hint.

Scope: cgroup v2 only (the `cpuset`, `cpu` and core `cgroup.*` files). A v1
hierarchy, threaded cgroups and delegation to non-root users are not supported.
`cgroup2_mount()` finds where the unified hierarchy is mounted on a host whose
`/sys/fs/cgroup` is v1 or hybrid.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from ktstr.errors import ConfigError
from ktstr.system import fs
from ktstr.topology import format_cpulist

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Longest cgroup name the kernel accepts (NAME_MAX of kernfs).
NAME_MAX = 255


def check_cgroup_name(name: str) -> None:
    """Raise ConfigError unless `name` can be one cgroup directory name."""
    why = ""
    if not isinstance(name, str) or not name:
        why = "it is empty"
    elif "/" in name:
        why = "it contains '/' (one path component only)"
    elif name in (".", ".."):
        why = "it is a relative directory reference"
    elif "\n" in name or "\0" in name:
        why = "it contains a newline or NUL, which the kernel rejects"
    elif name.startswith("cgroup.") or name.startswith("cpuset.") or name.startswith("cpu."):
        why = "it clashes with the cgroup's own control files"
    elif len(name.encode()) > NAME_MAX:
        why = f"it is longer than {NAME_MAX} bytes"
    if why:
        raise ConfigError(f"cgroup name {name!r} is invalid: {why}; hint: use a short name "
                          "like 'cg_0' made of letters, digits, '_' and '-'")


def cgroup2_mount(proc_root: Path = Path("/proc")) -> Path | None:
    """Where the cgroup2 (unified) hierarchy is mounted, from /proc/self/mounts."""
    for line in fs.read_text(proc_root / "self" / "mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1].replace("\\040", " "))
    return None


def _events(text: str) -> dict[str, int]:
    """Parse `cgroup.events` (`populated 1\\nfrozen 0`)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


class CgroupFs:
    """cgroup v2 operations on the hierarchy mounted at `root`."""

    def __init__(self, root: Path = CGROUP_ROOT) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"CgroupFs({str(self.root)!r})"

    # -- names and reading -------------------------------------------------

    def path(self, name: str) -> Path:
        """The directory of cgroup `name` ("" is the root); checks every component."""
        if name == "":
            return self.root
        for part in name.split("/"):
            check_cgroup_name(part)
        return self.root / name

    def exists(self, name: str) -> bool:
        return self.path(name).is_dir()

    def children(self, name: str) -> list[str]:
        """Names (relative to the root) of the direct child cgroups, sorted."""
        base = self.path(name)
        try:
            entries = sorted(e.name for e in base.iterdir() if e.is_dir())
        except FileNotFoundError:
            return []
        return [f"{name}/{e}" if name else e for e in entries]

    def procs(self, name: str) -> list[int]:
        """Pids of the processes directly in `name` (not in its children)."""
        text = fs.read_text(self.path(name) / "cgroup.procs")
        return [int(tok) for tok in text.split()]

    def threads(self, name: str) -> list[int]:
        """Tids of every thread directly in `name` (a pcomm leader's worker threads too)."""
        text = fs.read_text(self.path(name) / "cgroup.threads")
        return [int(tok) for tok in text.split()]

    def controllers(self, name: str) -> frozenset[str]:
        """Controllers available to `name` (its parent enabled them)."""
        return frozenset(fs.read_text(self.path(name) / "cgroup.controllers").split())

    def subtree_control(self, name: str) -> frozenset[str]:
        """Controllers `name` enables for its children."""
        return frozenset(fs.read_text(self.path(name) / "cgroup.subtree_control").split())

    def events(self, name: str) -> dict[str, int]:
        """`cgroup.events`: `populated` (tasks here or below) and `frozen`."""
        return _events(fs.read_text(self.path(name) / "cgroup.events"))

    def cpuset(self, name: str) -> frozenset[int]:
        """`cpuset.cpus` as configured (empty: inherits the parent's)."""
        return fs.read_cpulist(self.path(name) / "cpuset.cpus")

    def effective_cpus(self, name: str) -> frozenset[int]:
        """`cpuset.cpus.effective`: the CPUs the tasks of `name` may run on."""
        return fs.read_cpulist(self.path(name) / "cpuset.cpus.effective")

    # -- changing ----------------------------------------------------------

    def create(self, name: str) -> Path:
        """Create `name` and any missing ancestors; an existing cgroup is kept."""
        if name == "":
            return self.root
        parts = name.split("/")
        for i in range(1, len(parts) + 1):
            fs.make_dir(self.path("/".join(parts[:i])), exist_ok=True)
        return self.path(name)

    def enable_controllers(self, name: str, controllers: Iterable[str]) -> None:
        """Enable `controllers` for the children of `name`, and on every ancestor.

        cgroup v2 only offers a controller to a cgroup whose parent enabled it, so
        the write goes top-down from the root to `name` itself.
        """
        wanted = list(dict.fromkeys(controllers))
        parts = name.split("/") if name else []
        for depth in range(len(parts) + 1):
            level = "/".join(parts[:depth])
            missing = [c for c in wanted if c not in self.subtree_control(level)]
            if missing:
                fs.write_text(self.path(level) / "cgroup.subtree_control",
                              " ".join(f"+{c}" for c in missing))

    def set_cpuset(self, name: str, cpus: Iterable[int]) -> None:
        """Write `cpuset.cpus`; an empty set is refused (use `clear_cpuset`)."""
        cpuset = frozenset(cpus)
        if not cpuset:
            raise ConfigError(f"cannot set an empty cpuset on cgroup {name!r}: its tasks could "
                              "run nowhere; hint: use clear_cpuset() to inherit the parent's")
        fs.write_text(self.path(name) / "cpuset.cpus", format_cpulist(cpuset))

    def clear_cpuset(self, name: str) -> None:
        """Empty `cpuset.cpus`, so `name` inherits its parent's CPUs."""
        fs.write_text(self.path(name) / "cpuset.cpus", "\n")

    def move_task(self, name: str, pid: int) -> None:
        """Move process `pid` (all its threads) into `name`."""
        fs.write_text(self.path(name) / "cgroup.procs", str(pid))

    def move_tasks(self, src: str, dst: str) -> int:
        """Move every process of `src` into `dst`; tasks that exited meanwhile are skipped."""
        moved = 0
        for pid in self.procs(src):
            try:
                self.move_task(dst, pid)
            except fs.SysIoError as err:
                if err.errno != errno.ESRCH:
                    raise
                continue
            moved += 1
        return moved

    def freeze(self, name: str, *, timeout: float = fs.WRITE_TIMEOUT_S) -> None:
        """Freeze every task in `name` and below; returns once the kernel says `frozen 1`."""
        self._set_frozen(name, True, timeout)

    def unfreeze(self, name: str, *, timeout: float = fs.WRITE_TIMEOUT_S) -> None:
        """Thaw `name`; returns once `frozen 0`."""
        self._set_frozen(name, False, timeout)

    def _set_frozen(self, name: str, frozen: bool, timeout: float) -> None:
        want = int(frozen)
        fs.write_text(self.path(name) / "cgroup.freeze", str(want), timeout=timeout)
        events = self.path(name) / "cgroup.events"
        if not fs.wait_until(events, lambda t: _events(t).get("frozen") == want, timeout):
            state = "frozen" if frozen else "thawed"
            raise fs.SysIoError(
                f"cgroup {name!r} was not {state} within {timeout:g}s (cgroup.events still "
                f"says frozen {1 - want}); hint: a task may be stuck in an uninterruptible "
                "sleep (D state)", str(events))

    def remove(self, name: str, *, kill: bool = True, timeout: float = fs.WRITE_TIMEOUT_S) -> None:
        """Remove `name` and its children, dealing with tasks still inside.

        Leftover processes are SIGKILLed (`kill=True`, through `cgroup.kill`) or
        moved to the root cgroup (`kill=False`). The calling process itself is
        always moved, never killed. rmdir is retried on EBUSY until `timeout`
        because the kernel empties a cgroup asynchronously after its tasks die.
        A cgroup that does not exist is not an error.
        """
        if name == "":
            raise ConfigError("refusing to remove the root cgroup; hint: name a child cgroup")
        if not self.exists(name):
            return
        deadline = time.monotonic() + timeout
        for child in self.children(name):
            self.remove(child, kill=kill, timeout=max(0.1, deadline - time.monotonic()))
        self._evacuate(name, kill)
        events = self.path(name) / "cgroup.events"
        fs.wait_until(events, lambda t: _events(t).get("populated") == 0,
                      max(0.0, deadline - time.monotonic()))
        while True:
            try:
                fs.remove_dir(self.path(name))
                return
            except fs.SysIoError as err:
                if err.errno == errno.ENOENT:
                    return
                if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(0.01)  # the kernel frees the css asynchronously; no event for it

    def _evacuate(self, name: str, kill: bool) -> None:
        pids = self.procs(name)
        if not pids:
            return
        me = os.getpid()
        if me in pids or not kill:
            for pid in ([me] if kill else pids):
                try:
                    self.move_task("", pid)
                except fs.SysIoError as err:
                    if err.errno != errno.ESRCH:
                        raise
        if not kill:
            return
        log.info("killing %d leftover task(s) in cgroup %s", len(pids), name)
        kill_file = self.path(name) / "cgroup.kill"
        if kill_file.exists():  # Linux 5.14+
            fs.write_text(kill_file, "1")
            return
        for pid in pids:
            if pid != me:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
