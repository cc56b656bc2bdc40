"""The ops on cgroups and their workers: add, remove, spawn, stop, move, freeze, capture.

A cgroup added by `Op.add_cgroup` lives until `Op.remove_cgroup` or the end of
the scenario; workers forked by `Op.spawn` until `Op.stop_cgroup`, the removal
of their cgroup or the end, when they are collected and judged with the
cgroup's cpuset at that time (see steps.py). A frozen cgroup is thawed before
its workers are asked to stop, and nothing may be spawned into it while it is
frozen: the workers would freeze before saying ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ktstr.errors import ConfigError
from ktstr.scenario.ops import Op, check_cgroup_name
from ktstr.validators import is_int
from ktstr.work import SpinWait, WorkType
from ktstr.workload import WorkloadConfig

if TYPE_CHECKING:
    from ktstr.scenario.dry_run import DryRun
    from ktstr.scenario.live import LiveScenario


@dataclass(frozen=True, slots=True)
class AddCgroup(Op):
    """`Op.add_cgroup`: a cgroup created here, alive until removed or the scenario ends."""

    name: str

    def __post_init__(self) -> None:
        check_cgroup_name("Op.add_cgroup:", self.name)

    def check(self, dry: DryRun) -> None:
        if dry.exists(self.name):
            raise ConfigError(f"{dry.where}: Op.add_cgroup({self.name!r}) but that cgroup "
                              "already exists; hint: use another name, or remove it first "
                              "with Op.remove_cgroup")
        dry.add(self.name)

    def apply(self, live: LiveScenario) -> None:
        live.ctx.cgroups.create(self.name)
        live.persistent.append(self.name)
        live.cpusets[self.name] = None


@dataclass(frozen=True, slots=True)
class RemoveCgroup(Op):
    """`Op.remove_cgroup`: a cgroup removed here, its workers stopped and judged first."""

    name: str

    def __post_init__(self) -> None:
        check_cgroup_name("Op.remove_cgroup:", self.name)

    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def check(self, dry: DryRun) -> None:
        dry.require_names(self)
        dry.remove(self.name)

    def check_payloads(self, running: list[tuple[str, str]]) -> None:
        running[:] = [p for p in running if p[1] != self.name]  # killed with their cgroup

    def apply(self, live: LiveScenario) -> None:
        live.kill_payloads_in(self.name)
        live.collect(self.name)
        live.remove(self.name)


@dataclass(frozen=True, slots=True)
class Spawn(Op):
    """`Op.spawn`: workers running `work` forked into `cgroup` and started at once."""

    cgroup: str
    work: WorkType = field(default_factory=SpinWait)
    workers: int | None = None

    def __post_init__(self) -> None:
        check_cgroup_name("Op.spawn:", self.cgroup)
        if not isinstance(self.work, WorkType):
            raise ConfigError(f"Op.spawn: work {self.work!r} is not a work type; hint: pass "
                              "e.g. work.SpinWait()")
        if self.workers is not None and (not is_int(self.workers) or self.workers < 1):
            raise ConfigError(f"Op.spawn: workers={self.workers!r} is not a positive count; "
                              "hint: spawn at least one worker, or None for "
                              "ctx.workers_per_cgroup")
        group = self.work.group_size
        if self.workers is not None and group is not None and self.workers % group:
            raise ConfigError(f"Op.spawn: workers={self.workers} is not a multiple of "
                              f"{self.work.name}'s group size {group}; hint: use "
                              f"workers={max(group, self.workers - self.workers % group)}")

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)

    def check(self, dry: DryRun) -> None:
        workers = self.workers or dry.ctx.workers_per_cgroup
        group = self.work.group_size
        if group is not None and workers % group:
            raise ConfigError(f"{dry.where}: {self!r} would fork {workers} workers, not a "
                              f"multiple of {self.work.name}'s group size {group}; hint: pass "
                              f"workers={max(group, workers - workers % group)}")
        if self.cgroup in dry.frozen:
            raise ConfigError(
                f"{dry.where}: {self!r} spawns into cgroup {self.cgroup!r}, which is frozen at "
                "that point: its workers would freeze before saying ready; hint: "
                f"Op.unfreeze_cgroup({self.cgroup!r}) first")
        dry.require_names(self)

    def apply(self, live: LiveScenario) -> None:
        cfg = WorkloadConfig(workers=self.workers or live.ctx.workers_per_cgroup,
                             work=self.work)
        live.spawn(self.cgroup, cfg).start()


@dataclass(frozen=True, slots=True)
class StopCgroup(Op):
    """`Op.stop_cgroup`: a cgroup's workers stopped, collected and judged; it stays."""

    name: str

    def __post_init__(self) -> None:
        check_cgroup_name("Op.stop_cgroup:", self.name)

    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def apply(self, live: LiveScenario) -> None:
        live.collect(self.name)


@dataclass(frozen=True, slots=True)
class MoveAllTasks(Op):
    """`Op.move_all_tasks`: every task of `src` moved into `dst`, and judged with it."""

    src: str
    dst: str

    def __post_init__(self) -> None:
        check_cgroup_name("Op.move_all_tasks:", self.src)
        check_cgroup_name("Op.move_all_tasks:", self.dst)
        if self.src == self.dst:
            raise ConfigError(f"Op.move_all_tasks({self.src!r}, {self.dst!r}) moves a cgroup's "
                              "tasks into itself; hint: name another destination cgroup")

    def names(self) -> tuple[str, ...]:
        return (self.src, self.dst)

    def check_payloads(self, running: list[tuple[str, str]]) -> None:
        running[:] = [(n, self.dst if c == self.src else c) for n, c in running]

    def apply(self, live: LiveScenario) -> None:
        live.ctx.cgroups.move_tasks(self.src, self.dst)
        live.handles.setdefault(self.dst, []).extend(live.handles.pop(self.src, []))
        for run in live.payloads.runs:  # payloads moved too: address them by dst now
            if run.cgroup == self.src:
                run.cgroup = self.dst


@dataclass(frozen=True, slots=True)
class FreezeCgroup(Op):
    """`Op.freeze_cgroup`: every task in a cgroup frozen (`cgroup.freeze`)."""

    name: str

    def __post_init__(self) -> None:
        check_cgroup_name("Op.freeze_cgroup:", self.name)

    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def check(self, dry: DryRun) -> None:
        dry.require_names(self)
        dry.frozen.add(self.name)

    def apply(self, live: LiveScenario) -> None:
        live.ctx.cgroups.freeze(self.name)
        live.frozen.add(self.name)


@dataclass(frozen=True, slots=True)
class UnfreezeCgroup(Op):
    """`Op.unfreeze_cgroup`: every task in a frozen cgroup thawed."""

    name: str

    def __post_init__(self) -> None:
        check_cgroup_name("Op.unfreeze_cgroup:", self.name)

    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def check(self, dry: DryRun) -> None:
        dry.require_names(self)
        dry.frozen.discard(self.name)

    def apply(self, live: LiveScenario) -> None:
        live.ctx.cgroups.unfreeze(self.name)
        live.frozen.discard(self.name)


@dataclass(frozen=True, slots=True)
class CaptureCgroupProcs(Op):
    """`Op.capture_cgroup_procs`: a cgroup's `cgroup.procs` recorded under `tag`."""

    tag: str
    cgroup: str

    def __post_init__(self) -> None:
        if not isinstance(self.tag, str) or not self.tag:
            raise ConfigError(f"Op.capture_cgroup_procs: tag {self.tag!r} is empty; hint: "
                              "name the capture, e.g. 'before_move'")
        check_cgroup_name("Op.capture_cgroup_procs:", self.cgroup)

    def names(self) -> tuple[str, ...]:
        return (self.cgroup,)

    def check(self, dry: DryRun) -> None:
        if not dry.again:  # a loop's second pass overwrites its first capture
            if self.tag in dry.tags:
                raise ConfigError(f"{dry.where}: capture tag {self.tag!r} is used twice; "
                                  "hint: give each Op.capture_cgroup_procs its own tag")
            dry.tags.add(self.tag)
        dry.require_names(self)

    def apply(self, live: LiveScenario) -> None:
        live.captures[self.tag] = list(live.ctx.cgroups.procs(self.cgroup))
