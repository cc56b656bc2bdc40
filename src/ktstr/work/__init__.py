"""The work-type catalogue: what each worker process does (seed 002).

Implemented: `SpinWait`, `YieldHeavy`, `Mixed`, `Bursty(burst, sleep)`,
`Sequence(first, *rest)` with phases `Spin`, `Sleep`, `Yield`, and
`Custom(name, fn, cfg=None)`. A new type is one frozen dataclass deriving from
`WorkType` with a `run(loop)` method (see `ktstr.work.base`). Forking workers
and collecting their reports is `ktstr.workload`'s job.
"""

from ktstr.work.base import WorkType, seconds
from ktstr.work.cpu import Bursty, Mixed, SpinWait, YieldHeavy
from ktstr.work.custom import Custom, WorkerCtx
from ktstr.work.loop import StopSignal, WorkLoop
from ktstr.work.sequence import Phase, Sequence, Sleep, Spin, Yield

__all__ = [
    "Bursty",
    "Custom",
    "Mixed",
    "Phase",
    "Sequence",
    "Sleep",
    "Spin",
    "SpinWait",
    "StopSignal",
    "WorkLoop",
    "WorkType",
    "WorkerCtx",
    "Yield",
    "YieldHeavy",
    "seconds",
]
