"""`CgroupDef`: one cgroup of a scenario, its workers and where they may run.

A frozen value: tests build lists of them and `execute_defs` (later `Step`s) turns
each into a cgroup, a cpuset and a `WorkloadHandle`. What can be checked
without a topology is checked in the constructor (`validate()`), so a bad
definition fails at import time of the test file, not inside a booted VM.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, field

from ktstr.errors import ConfigError
from ktstr.scenario.cpuset import CpusetSpec
from ktstr.scenario.topo import TestTopology
from ktstr.system.cgroup import check_cgroup_name
from ktstr.validators import is_int
from ktstr.work import SpinWait, WorkType
from ktstr.workload.affinity import AffinityIntent, Masks

#: Longest process name the kernel keeps (TASK_COMM_LEN 16 minus the NUL).
COMM_MAX = 15


@dataclass(frozen=True, slots=True)
class CgroupDef:
    """A cgroup named `name` running `workers` workers of `work`.

    `workers=None` means `ctx.workers_per_cgroup`; `cpuset=None` leaves the
    cgroup on its parent's CPUs; `affinity` pins each worker with
    sched_setaffinity: a `CpusetSpec` or explicit CPUs pin every worker the
    same, an `AffinityIntent` gives each worker its own mask, resolved on the
    topology and the cgroup's effective cpuset when the workers are spawned;
    `swappable=True` lets a gauntlet's `ctx.work_type_override` replace `work`.
    `mem_policy` is not supported yet: anything but None raises ConfigError.
    """

    name: str
    _: KW_ONLY
    workers: int | None = None
    work: WorkType = field(default_factory=SpinWait)
    cpuset: CpusetSpec | None = None
    policy: object | None = None
    nice: int | None = None
    affinity: CpusetSpec | AffinityIntent | frozenset[int] | None = None
    pcomm: str | None = None
    swappable: bool = False
    mem_policy: object | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for values that are wrong on every topology."""
        check_cgroup_name(self.name)
        if self.mem_policy is not None:
            raise ConfigError(f"cgroup {self.name!r}: mem_policy={self.mem_policy!r} is not "
                              "supported yet (workers do not set a memory policy yet); "
                              "hint: leave it unset")
        if self.workers is not None:
            if not is_int(self.workers) or self.workers < 1:
                raise ConfigError(f"cgroup {self.name!r}: workers={self.workers!r} is invalid: "
                                  "it must be an integer >= 1; hint: workers=2, or None for "
                                  "ctx.workers_per_cgroup")
            group = self.work.group_size
            if group is not None and self.workers % group:
                raise ConfigError(f"cgroup {self.name!r}: workers={self.workers} is not a "
                                  f"multiple of {self.work.name}'s group size {group}; hint: "
                                  f"use workers={max(group, self.workers - self.workers % group)}")
        if self.nice is not None and not (isinstance(self.nice, int) and -20 <= self.nice <= 19):
            raise ConfigError(f"cgroup {self.name!r}: nice={self.nice!r} is invalid: it must "
                              "be an integer in [-20, 19]")
        if self.pcomm is not None and not (0 < len(self.pcomm.encode()) <= COMM_MAX):
            raise ConfigError(f"cgroup {self.name!r}: pcomm={self.pcomm!r} is invalid: a "
                              f"process name holds 1-{COMM_MAX} bytes; hint: shorten it")
        if self.affinity is not None and (
                isinstance(self.affinity, str)
                or not isinstance(self.affinity, CpusetSpec | AffinityIntent | Iterable)):
            raise ConfigError(f"cgroup {self.name!r}: affinity={self.affinity!r} is not a "
                              "CpusetSpec, an AffinityIntent or a set of CPUs; hint: e.g. "
                              "affinity=AffinityIntent.single_cpu()")
        if self.cpuset is not None and not isinstance(self.cpuset, CpusetSpec):
            raise ConfigError(f"cgroup {self.name!r}: cpuset={self.cpuset!r} is not a "
                              "CpusetSpec; hint: e.g. cpuset=CpusetSpec.llc(0)")

    def resolved_cpuset(self, topo: TestTopology) -> frozenset[int] | None:
        """The CPUs of `cpuset` on `topo` (None when no cpuset is set)."""
        return self.cpuset.resolve(topo) if self.cpuset is not None else None

    def worker_affinity(self, topo: TestTopology, cpus: frozenset[int] | None,
                        workers: int) -> frozenset[int] | Masks | None:
        """What `WorkloadConfig.affinity` gets: one mask for every worker, one per
        worker for an `AffinityIntent` (resolved for a cgroup on `cpus`, None: every
        CPU), or None when unset."""
        if not isinstance(self.affinity, AffinityIntent):
            return self.resolved_affinity(topo)
        try:
            return self.affinity.resolve(topo, cpus, workers)
        except ConfigError as err:
            raise ConfigError(f"cgroup {self.name!r}: {err}") from None

    def resolved_affinity(self, topo: TestTopology) -> frozenset[int] | None:
        """The CPUs of a `CpusetSpec` or explicit `affinity` on `topo` (None when
        unset); an `AffinityIntent` needs `worker_affinity`."""
        if self.affinity is None:
            return None
        if isinstance(self.affinity, AffinityIntent):
            raise ConfigError(f"cgroup {self.name!r}: affinity {self.affinity} gives each "
                              "worker its own mask; hint: use worker_affinity(topo, cpus, "
                              "workers)")
        if isinstance(self.affinity, CpusetSpec):
            return self.affinity.resolve(topo)
        missing = frozenset(self.affinity) - topo.all_cpus
        if not self.affinity or missing:
            raise ConfigError(f"cgroup {self.name!r}: affinity {sorted(self.affinity)} names "
                              f"no CPU or CPUs that do not exist ({sorted(missing)}); hint: use "
                              "a CpusetSpec")
        return frozenset(self.affinity)
