"""`WorkloadConfig`: the spawn spec of one group of identical workers.

`CgroupDef` builds one per cgroup; custom scenarios build their own for
`WorkloadHandle.spawn`. Everything that needs no running system is checked at
construction (ConfigError naming the value and the fix).

- `workers`: how many processes to fork (>= 1; a multiple of a grouped work
  type's `group_size`).
- `work`: the `WorkType` every worker runs.
- `policy`: a `SchedPolicy` (or any object with an `apply(pid)` method, pid 0 =
  the calling thread), applied by each worker to itself before it reports
  ready; None keeps the inherited policy.
- `nice`: -20..19, None keeps the inherited value (nice is per thread on Linux,
  so each worker thread sets its own).
- `affinity`: CPUs each worker (process or thread) is pinned to with
  `sched_setaffinity`; None keeps the inherited mask (the cgroup's cpuset
  still applies). One set (a `frozenset`, or any iterable of CPU numbers)
  pins every worker the same; a tuple of sets, one per worker in index order,
  gives each its own (`affinity_for(i)`: what worker i gets). An
  `AffinityIntent` is accepted here but rejected by `WorkloadHandle.spawn`: it
  needs scenario context, so a `CgroupDef` resolves it at spawn, and a custom
  scenario resolves it itself with `intent.resolve(ctx.topo, cpus, workers)`.
- `clone_mode`: `CloneMode.FORK` (default), one process per worker, or
  `CloneMode.THREAD`: every worker is a thread of one forked leader process.
- `pcomm`: the fork-then-thread path: one forked leader whose `comm` is
  `pcomm` (at most 15 bytes) hosts all the workers as its threads (they
  inherit the name), whatever `clone_mode` says: the shape of a real
  multi-threaded application, which schedulers group by its leader.
  `threaded` tells whether a config runs its workers as threads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from ktstr.errors import ConfigError
from ktstr.system.libc import COMM_MAX_BYTES
from ktstr.validators import is_int
from ktstr.work import SpinWait, WorkType
from ktstr.work.policy import CloneMode
from ktstr.workload.affinity import AffinityIntent, Masks

NICE_MIN, NICE_MAX = -20, 19


def _cpu_set(value: object) -> frozenset[int]:
    cpus = list(value) if isinstance(value, Iterable) else [value]
    if not cpus or any(not is_int(c) or c < 0 for c in cpus):
        raise ConfigError(
            f"affinity {value!r} is not a non-empty set of CPU numbers; "
            "hint: pass e.g. frozenset({0, 1}), or None to keep the inherited mask")
    return frozenset(cast(list[int], cpus))


def _affinity(value: object, workers: int) -> frozenset[int] | Masks | AffinityIntent:
    """One mask for all workers, one per worker (a sequence of sets), or an intent."""
    if isinstance(value, AffinityIntent):
        return value
    if isinstance(value, tuple | list) and value and all(
            isinstance(m, Iterable) and not isinstance(m, str) for m in value):
        if len(value) != workers:
            raise ConfigError(
                f"affinity gives {len(value)} per-worker masks for {workers} workers; hint: "
                "one mask per worker, or a single set for all of them")
        return tuple(_cpu_set(m) for m in value)
    return _cpu_set(value)


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """What to fork: `workers` processes running `work`, with optional placement knobs."""

    workers: int = 2
    work: WorkType = field(default_factory=SpinWait)
    policy: object | None = None
    nice: int | None = None
    affinity: frozenset[int] | Masks | AffinityIntent | None = None
    pcomm: str | None = None
    clone_mode: CloneMode = CloneMode.FORK

    def require_resolved(self) -> None:
        """Raise ConfigError if `affinity` is still an intent (the direct-spawn gate)."""
        if isinstance(self.affinity, AffinityIntent):
            raise ConfigError(
                f"affinity {self.affinity} needs scenario context (the topology and the "
                "cgroup's CPUs) and cannot be spawned directly; hint: use it in "
                "CgroupDef(affinity=...), or pass "
                f"affinity=AffinityIntent.{self.affinity}.resolve(ctx.topo, cpus, workers)")

    def affinity_for(self, index: int) -> frozenset[int] | None:
        """The CPUs worker `index` pins itself to (None: it keeps the inherited mask)."""
        self.require_resolved()
        if self.affinity is None or isinstance(self.affinity, frozenset):
            return self.affinity
        return cast(Masks, self.affinity)[index]

    @property
    def threaded(self) -> bool:
        """Whether the workers are threads of one leader (THREAD mode or a pcomm)."""
        return self.clone_mode is CloneMode.THREAD or self.pcomm is not None

    def __post_init__(self) -> None:
        if not is_int(self.workers) or self.workers < 1:
            raise ConfigError(f"workers = {self.workers!r} is not a positive count; "
                              "hint: spawn at least one worker")
        if not isinstance(self.work, WorkType):
            raise ConfigError(f"work = {self.work!r} is not a work type; "
                              "hint: pass e.g. work.SpinWait() or work.Bursty(0.05, 0.1)")
        group = self.work.group_size
        if group is not None and self.workers % group:
            raise ConfigError(
                f"{self.work.name} pairs workers in groups of {group} but workers = "
                f"{self.workers}; hint: use a multiple of {group}")
        if self.nice is not None and (not isinstance(self.nice, int)
                                      or not NICE_MIN <= self.nice <= NICE_MAX):
            raise ConfigError(f"nice = {self.nice!r} is outside {NICE_MIN}..{NICE_MAX}; "
                              "hint: pick a nice value in that range")
        if self.affinity is not None:
            object.__setattr__(self, "affinity", _affinity(self.affinity, self.workers))
        if self.pcomm is not None:
            raw = self.pcomm.encode("utf-8") if isinstance(self.pcomm, str) else b""
            if not raw or b"\0" in raw or len(raw) > COMM_MAX_BYTES:
                raise ConfigError(
                    f"pcomm = {self.pcomm!r} is not a task name of 1-{COMM_MAX_BYTES} "
                    "bytes without NUL (the kernel's TASK_COMM_LEN); hint: shorten it")
        if not isinstance(self.clone_mode, CloneMode):
            raise ConfigError(f"clone_mode = {self.clone_mode!r} is not a CloneMode; "
                              "hint: pass CloneMode.FORK or CloneMode.THREAD")
        if self.policy is not None and not callable(getattr(self.policy, "apply", None)):
            raise ConfigError(f"policy = {self.policy!r} has no apply(pid) method; "
                              "hint: pass a scheduling policy object, or None")
