"""The work-type catalogue: what each worker process does (seed 002).

Implemented: `SpinWait`, `YieldHeavy`, `Mixed`, `Bursty(burst, sleep)`,
`Sequence(first, *rest)` with phases `Spin`, `Sleep`, `Yield`, and
`Custom(name, fn, cfg=None)`; paired wake types `FutexPingPong(spin_iters)` and
`PipeIo` (`ktstr.work.wake`); `ForkExit`, `AffinityChurn(spin_iters)`,
`IdleChurn(burst, sleep)`, `NiceSweep` (`ktstr.work.taskchurn`);
`PageFaultChurn(region_kib, touches_per_cycle, spin_iters)`,
`CachePressure(size_kib, stride)` (`ktstr.work.memory`); `IoSyncWrite`
(`ktstr.work.io`). A new type is one frozen dataclass deriving from
`WorkType` with a `run(loop)` method (see `ktstr.work.base`). Forking workers
and collecting their reports is `ktstr.workload`'s job.
"""

from ktstr.work.base import WorkType, seconds
from ktstr.work.cpu import Bursty, Mixed, SpinWait, YieldHeavy
from ktstr.work.custom import Custom, WorkerCtx
from ktstr.work.io import IoSyncWrite
from ktstr.work.loop import StopSignal, WorkLoop
from ktstr.work.memory import CachePressure, PageFaultChurn
from ktstr.work.sequence import Phase, Sequence, Sleep, Spin, Yield
from ktstr.work.taskchurn import AffinityChurn, ForkExit, IdleChurn, NiceSweep
from ktstr.work.wake import FutexPingPong, PipeIo

__all__ = [
    "AffinityChurn",
    "Bursty",
    "CachePressure",
    "Custom",
    "ForkExit",
    "FutexPingPong",
    "IdleChurn",
    "IoSyncWrite",
    "Mixed",
    "NiceSweep",
    "PageFaultChurn",
    "Phase",
    "PipeIo",
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
