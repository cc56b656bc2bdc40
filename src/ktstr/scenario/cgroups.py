"""`CgroupManager` (`ctx.cgroups`): the cgroups of one test, under one parent.

Names are relative to a per-test parent cgroup (`ktstr` under the cgroup2 root
by default) whose `cpuset` and `cpu` controllers are enabled for its children,
so `create("cg_0")` makes `/sys/fs/cgroup/ktstr/cg_0`. Everything the manager
created is removed by `close()`, leftover tasks killed first; a cgroup that was
already there is left alone.

A controller the host does not offer in cgroup2 (a hybrid v1/v2 host binds
`cpuset` to v1) is skipped when the parent is set up; `set_cpuset` then fails
with a message saying so, while cgroups without cpusets still work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from ktstr.errors import ConfigError, SystemError_
from ktstr.scenario.cpuset import CpusetSpec
from ktstr.scenario.topo import TestTopology
from ktstr.system.cgroup import CgroupFs

log = logging.getLogger(__name__)

DEFAULT_CONTROLLERS = ("cpuset", "cpu")


class CgroupManager:
    """Create, change and remove the test's cgroups; `close()` undoes `create()`s."""

    def __init__(self, cgfs: CgroupFs, parent: str = "ktstr", *,
                 topo: TestTopology | None = None,
                 controllers: Iterable[str] = DEFAULT_CONTROLLERS) -> None:
        self.fs = cgfs
        self.parent = parent
        self.topo = topo
        self._created: list[str] = []  # full names, in creation order
        self._own_parent = False
        self.controllers: frozenset[str] = frozenset()
        self._setup(tuple(controllers))

    def _setup(self, controllers: tuple[str, ...]) -> None:
        existed = self.fs.exists(self.parent)
        self.fs.create(self.parent)
        self._own_parent = not existed
        offered = self.fs.controllers("")
        usable = [c for c in controllers if c in offered]
        skipped = sorted(set(controllers) - set(usable))
        if skipped:
            log.warning("cgroup2 at %s does not offer %s (bound to cgroup v1?); cpusets "
                        "need them", self.fs.root, ", ".join(skipped))
        if usable:
            self.fs.enable_controllers(self.parent, usable)
        self.controllers = frozenset(usable)

    def __repr__(self) -> str:
        return f"CgroupManager({self.fs.root / self.parent})"

    def __enter__(self) -> CgroupManager:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- names -----------------------------------------------------------------

    def _full(self, name: str) -> str:
        if not name:
            raise ConfigError("a test cgroup needs a name; hint: e.g. 'cg_0'")
        self.fs.path(name)  # validates every component
        return f"{self.parent}/{name}"

    def path(self, name: str) -> Path:
        """The directory of cgroup `name` (what a worker's `cgroup_dir` is)."""
        return self.fs.path(self._full(name))

    def exists(self, name: str) -> bool:
        """Whether cgroup `name` is there now (made by this manager or not)."""
        return self.fs.exists(self._full(name))

    @property
    def parent_path(self) -> Path:
        return self.fs.path(self.parent)

    # -- operations --------------------------------------------------------------

    def create(self, name: str) -> Path:
        """Create cgroup `name` under the parent (existing ones are reused, not owned)."""
        full = self._full(name)
        existed = self.fs.exists(full)
        path = self.fs.create(full)
        if not existed:
            self._created.append(full)
        return path

    def remove(self, name: str) -> None:
        """Remove cgroup `name` and its children, killing tasks still inside."""
        full = self._full(name)
        self.fs.remove(full, kill=True)
        self._created = [c for c in self._created if c != full and not c.startswith(full + "/")]

    def set_cpuset(self, name: str, cpus: frozenset[int] | CpusetSpec) -> frozenset[int]:
        """Restrict `name` to `cpus` (a `CpusetSpec` is resolved on `self.topo`)."""
        if isinstance(cpus, CpusetSpec):
            if self.topo is None:
                raise ConfigError(f"cannot resolve cpuset {cpus} for cgroup {name!r}: this "
                                  "CgroupManager has no topology; hint: pass topo= or resolve "
                                  "the spec with ctx.topo first")
            cpus = cpus.resolve(self.topo)
        if "cpuset" not in self.controllers:
            raise SystemError_(
                f"cannot set cpuset {sorted(cpus)} on cgroup {name!r}: the cpuset controller "
                f"is not available in cgroup2 at {self.fs.root}; hint: the host binds cpuset "
                "to cgroup v1 (boot with systemd.unified_cgroup_hierarchy=1) or run in the VM")
        self.fs.set_cpuset(self._full(name), cpus)
        return frozenset(cpus)

    def clear_cpuset(self, name: str) -> None:
        """Let `name` use all of its parent's CPUs again."""
        self.fs.clear_cpuset(self._full(name))

    def effective_cpus(self, name: str) -> frozenset[int]:
        return self.fs.effective_cpus(self._full(name))

    def move_task(self, name: str, pid: int) -> None:
        self.fs.move_task(self._full(name), pid)

    def move_tasks(self, src: str, dst: str) -> int:
        """Move every process of `src` into `dst`; returns how many moved."""
        return self.fs.move_tasks(self._full(src), self._full(dst))

    def procs(self, name: str) -> list[int]:
        return self.fs.procs(self._full(name))

    def threads(self, name: str) -> list[int]:
        return self.fs.threads(self._full(name))

    def freeze(self, name: str) -> None:
        self.fs.freeze(self._full(name))

    def unfreeze(self, name: str) -> None:
        self.fs.unfreeze(self._full(name))

    def close(self) -> None:
        """Remove every cgroup this manager created (children first), then the parent
        if it created it. Tries them all; re-raises the first failure at the end."""
        first: BaseException | None = None
        targets = sorted(self._created, key=lambda c: c.count("/"), reverse=True)
        if self._own_parent:
            targets.append(self.parent)
        for full in targets:
            try:
                self.fs.remove(full, kill=True)
            except Exception as err:  # keep cleaning; report the first failure
                log.error("cleanup of cgroup %s failed: %s", full, err)
                first = first or err
        self._created.clear()
        self._own_parent = False
        if first is not None:
            raise first
