"""Scheduler definitions: which scheduler a test runs under.

This module holds the definitions only; starting and watching a sched_ext
scheduler in the guest is the runner's and the guest agent's job.

`constraints` (a `TopologyConstraints`) says which gauntlet presets the tests run
under this scheduler admit; a test's own constraints win over it, field by field.

Not supported yet: a `min_numa_locality` in `checks`; any value but the default
raises ConfigError rather than being accepted and ignored.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import ClassVar

from ktstr.checks import Assert
from ktstr.errors import ConfigError
from ktstr.gauntlet import TopologyConstraints
from ktstr.kernelid import parse_kernel_id

#: What `config_file_def`'s argument template names the guest path by.
CONFIG_FILE_PLACEHOLDER = "{file}"


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
    """A scheduler a test runs under: EEVDF, or a sched_ext binary with its settings."""

    name: str
    # A name to discover, a path (with a "/"), or a spec; None: SchedulerSpec.discover(name)
    binary: SchedulerSpec | str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    kargs: tuple[str, ...] = ()
    checks: Assert = field(default_factory=Assert)
    cgroup_parent: str | None = None
    sched_args: tuple[str, ...] = ()
    topology: tuple[int, int, int, int] = (1, 1, 2, 1)
    constraints: TopologyConstraints | None = None
    config_file: str | None = None
    config_file_def: tuple[str, str] | None = None
    kernels: tuple[str, ...] = ()

    EEVDF: ClassVar[Scheduler]

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a scheduler needs a name; hint: Scheduler('my_sched', ...)")
        if isinstance(self.binary, str):
            object.__setattr__(self, "binary", SchedulerSpec.path(self.binary)
                               if "/" in self.binary else SchedulerSpec.discover(self.binary))
        elif self.binary is not None and not isinstance(self.binary, SchedulerSpec):
            raise ConfigError(f"scheduler {self.name}: binary={self.binary!r} is neither a "
                              "name, a path nor a SchedulerSpec; hint: binary='scx_qmap'")
        if self.cgroup_parent is not None and (not self.cgroup_parent.startswith("/")
                                               or self.cgroup_parent == "/"):
            raise ConfigError(f"scheduler {self.name}: cgroup_parent={self.cgroup_parent!r} "
                              "must be a path below the cgroup root, e.g. '/ktstr_cells'")
        for key in self.sysctls:
            if "/" in key or not key or key.startswith("."):
                raise ConfigError(f"scheduler {self.name}: sysctl {key!r} is not in the dotted "
                                  "form; hint: 'kernel.sched_rt_runtime_us', not a path")
        if len(self.topology) != 4 or any(not isinstance(n, int) or n < 1
                                          for n in self.topology):
            raise ConfigError(f"scheduler {self.name}: topology={self.topology!r} is not "
                              "(numa_nodes, llcs, cores, threads) of positive integers")
        for name in ("kargs", "sched_args", "kernels"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise ConfigError(f"scheduler {self.name}: {name}={value!r} is one string; "
                                  f"hint: a list of them, {name}=[{value!r}]")
            object.__setattr__(self, name, tuple(value))
        for spec in self.kernels:
            try:
                parse_kernel_id(spec)
            except ConfigError as e:
                raise ConfigError(f"scheduler {self.name}: kernels: {e}") from None
        if self.config_file_def is not None:
            object.__setattr__(self, "config_file_def", self._checked_config_file_def())
        self._check_constraints()
        self._refuse_unsupported()

    def _check_constraints(self) -> None:
        """`constraints`: a TopologyConstraints that admits some preset."""
        if self.constraints is not None:
            if not isinstance(self.constraints, TopologyConstraints):
                raise ConfigError(f"scheduler {self.name}: constraints={self.constraints!r} "
                                  "is not a TopologyConstraints; hint: constraints="
                                  "TopologyConstraints(min_llcs=2)")
            try:
                self.constraints.resolved()
            except ConfigError as e:
                raise ConfigError(f"scheduler {self.name}: constraints: {e}") from None

    def _refuse_unsupported(self) -> None:
        locality = getattr(self.checks, "min_numa_locality", None)
        if locality is not None:
            raise ConfigError(f"scheduler {self.name}: checks min_numa_locality={locality!r} "
                              "is not supported yet (no check measures NUMA locality yet); "
                              "hint: leave it unset")

    def _checked_config_file_def(self) -> tuple[str, str]:
        """The inline-config seam: `(arg_template, guest_path)`, checked whole: the template
        names the file by `{file}`, the path is an absolute guest file path."""
        value = self.config_file_def
        if (not isinstance(value, tuple | list) or len(value) != 2
                or not all(isinstance(v, str) for v in value)):
            raise ConfigError(f"scheduler {self.name}: config_file_def={value!r} is not an "
                              "(arg_template, guest_path) pair of strings; hint: "
                              "('--config={file}', '/include-files/my.json')")
        template, guest_path = value
        if self.spec.kind in ("eevdf", "kernel_builtin"):
            raise ConfigError(f"scheduler {self.name}: config_file_def needs a scheduler binary "
                              f"to pass the file to, and {self.spec.kind} has none; hint: "
                              "drop config_file_def")
        if self.config_file is not None:
            raise ConfigError(f"scheduler {self.name}: config_file and config_file_def are "
                              "alternatives, both are set; hint: config_file for a host file, "
                              "config_file_def for a test's inline config=")
        if CONFIG_FILE_PLACEHOLDER not in template:
            raise ConfigError(f"scheduler {self.name}: config_file_def template {template!r} "
                              f"has no {CONFIG_FILE_PLACEHOLDER}; hint: "
                              f"'--config={CONFIG_FILE_PLACEHOLDER}'")
        pure = PurePosixPath(guest_path)
        if not pure.is_absolute() or guest_path.endswith("/") or ".." in pure.parts \
                or pure == PurePosixPath("/"):
            raise ConfigError(f"scheduler {self.name}: config_file_def guest path "
                              f"{guest_path!r} is not an absolute file path; hint: "
                              "'/include-files/my.json'")
        return template, guest_path

    def config_args(self, content: str | None) -> list[str]:
        """The arguments the config seam puts first in the scheduler's command line:
        the template with `{file}` substituted (split like a shell word list, so
        '--config {file}' is two arguments), or nothing without content."""
        if self.config_file_def is None or content is None:
            return []
        template, guest_path = self.config_file_def
        return [word.replace(CONFIG_FILE_PLACEHOLDER, guest_path)
                for word in shlex.split(template)]

    @property
    def spec(self) -> SchedulerSpec:
        if isinstance(self.binary, SchedulerSpec):  # a str became one in __post_init__
            return self.binary
        return SchedulerSpec.discover(self.name)


Scheduler.EEVDF = Scheduler("eevdf", binary=SchedulerSpec.eevdf())

#: Every scheduler built with `declare_scheduler`, by name (the verifier sweep's list).
SCHEDULERS: dict[str, Scheduler] = {}


def declare_scheduler(name: str, *, binary: str | SchedulerSpec | None = None,
                      **fields: object) -> Scheduler:
    """Build a `Scheduler` and register it; `binary` is a name to discover, an absolute
    path, or a SchedulerSpec (default: discover `name`)."""
    known = {"sysctls", "kargs", "checks", "cgroup_parent", "sched_args", "topology",
             "constraints", "config_file", "config_file_def", "kernels"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"declare_scheduler({name!r}): unknown field(s) {', '.join(unknown)}; "
                          f"hint: one of {', '.join(sorted(known))}")
    sched = Scheduler(name, binary, **fields)  # type: ignore[arg-type]
    if name in SCHEDULERS and SCHEDULERS[name] != sched:
        raise ConfigError(f"scheduler {name!r} is declared twice with different fields; "
                          "hint: declare it once and import it")
    SCHEDULERS[name] = sched
    return sched
