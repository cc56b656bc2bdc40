"""Scheduler definitions (seed 003): which scheduler a test runs under.

This module holds the definitions only; starting and watching a sched_ext
scheduler in the guest is the runner's and the guest agent's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ktstr.checks import Assert
from ktstr.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SchedulerSpec:
    """How to find the scheduler: EEVDF (none), a binary by name or path, or kernel built-in."""

    kind: str  # "eevdf" | "discover" | "path" | "kernel_builtin"
    value: str = ""
    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()

    @classmethod
    def eevdf(cls) -> SchedulerSpec:
        return cls("eevdf")

    @classmethod
    def discover(cls, name: str) -> SchedulerSpec:
        if not name or "/" in name:
            raise ConfigError(f"SchedulerSpec.discover({name!r}): expected a binary name; "
                              "hint: use SchedulerSpec.path() for a path")
        return cls("discover", name)

    @classmethod
    def path(cls, p: str) -> SchedulerSpec:
        if not p.startswith("/"):
            raise ConfigError(f"SchedulerSpec.path({p!r}) is not absolute; hint: pass a full path")
        return cls("path", p)

    @classmethod
    def kernel_builtin(cls, enable: list[str] | tuple[str, ...] = (),
                       disable: list[str] | tuple[str, ...] = ()) -> SchedulerSpec:
        return cls("kernel_builtin", "", tuple(enable), tuple(disable))

    def has_active_scheduling(self) -> bool:
        return self.kind != "eevdf"


@dataclass(frozen=True, slots=True)
class Scheduler:
    name: str
    binary: SchedulerSpec | None = None  # None: SchedulerSpec.discover(name)
    sysctls: dict[str, str] = field(default_factory=dict)
    kargs: tuple[str, ...] = ()
    checks: Assert = field(default_factory=Assert)
    cgroup_parent: str | None = None
    sched_args: tuple[str, ...] = ()
    topology: tuple[int, int, int, int] = (1, 1, 2, 1)
    constraints: object | None = None
    config_file: str | None = None
    config_file_def: tuple[str, str] | None = None
    kernels: tuple[str, ...] = ()

    EEVDF: ClassVar[Scheduler]

    @property
    def spec(self) -> SchedulerSpec:
        return self.binary if self.binary is not None else SchedulerSpec.discover(self.name)


Scheduler.EEVDF = Scheduler("eevdf", binary=SchedulerSpec.eevdf())
