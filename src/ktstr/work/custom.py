"""`Custom(name, fn, cfg=None)`: a user-supplied work function.

`fn(wctx: WorkerCtx) -> WorkerReport` runs inside each forked worker after the
start barrier and owns its loop: it should return when `wctx.stop.is_set()`.
Closures are fine, the worker is a forked copy of the parent; `cfg` is handed
to `fn` as `wctx.cfg` for per-type configuration. What the function leaves at
its default in the report, the framework fills in: `tid`, `group_idx`,
`cgroup`, `work_type`, and the kernel's counters (CPU time, run delay,
migrations, context switches, wall time). Checkpoint telemetry (gaps,
`cpus_used`) is the function's own business.

A function that raises yields a report with `error` set; it never crashes
the parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ktstr.errors import ConfigError
from ktstr.work.base import WorkType
from ktstr.work.loop import StopSignal
from ktstr.work.report import WorkerReport


@dataclass(frozen=True, slots=True)
class WorkerCtx:
    """What a `Custom` function sees of its worker.

    `stop`: the stop request (`is_set()`, `wait(timeout)`); `cpus`: the CPUs the
    worker may run on at start; `sibling_pids`: the other workers of the same
    spawn; `cgroup_dir`: the cgroup the worker joined (None: the parent's);
    `cfg`: the `Custom`'s `cfg`; `index`: this worker's position in its spawn.
    """

    stop: StopSignal
    cpus: frozenset[int]
    sibling_pids: tuple[int, ...]
    cgroup_dir: Path | None
    cfg: object = None
    index: int = 0
    group_idx: int = 0


@dataclass(frozen=True, slots=True, init=False)
class Custom(WorkType):
    """Run `fn(wctx)` in each worker; `name` is what reports show as the work type."""

    by_name: ClassVar[bool] = False
    # A field here where WorkType has a read-only property; the slot wins.
    name: str
    fn: Callable[[WorkerCtx], WorkerReport]
    cfg: object = field(hash=False)

    def __init__(self, name: str, fn: Callable[[WorkerCtx], WorkerReport],
                 cfg: object = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "cfg", cfg)
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(
                f"Custom work name {self.name!r} is empty or not a string; "
                "hint: name it after what it does, e.g. Custom('lock_hammer', fn)")
        if not callable(self.fn):
            raise ConfigError(
                f"Custom work {self.name!r}: fn = {self.fn!r} is not callable; "
                "hint: pass a function taking a WorkerCtx and returning a WorkerReport")
