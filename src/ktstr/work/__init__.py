"""The work-type catalogue: what each worker process does.

One module per family, each type a frozen dataclass deriving from `WorkType`
with a `run(loop)` method (see `ktstr.work.base`): CPU primitives (`cpu`,
`compute`), memory and cache (`memory`), block I/O (`io`), paired and grouped
wakes (`wake`, `fanout`, `chain`, `locks`), timers, IRQs and signals
(`timers`), real-time pressure (`rt`), lifecycle and class churn
(`taskchurn`, `classchurn`), NUMA (`numa`), application models (`schbench`,
`taobench`), phases (`sequence`) and user code (`custom`). How a worker is
scheduled (`SchedPolicy`) and cloned (`CloneMode`) is in `policy`. Importing
this package registers every type in `WorkType.ALL_NAMES`. Forking workers and
collecting their reports is `ktstr.workload`'s job.
"""

from ktstr.validators import seconds
from ktstr.work.base import WorkType
from ktstr.work.chain import WakeChain, WakeMechanism
from ktstr.work.classchurn import CgroupAttachStorm, CgroupChurn, CrossAffinityChurn, PolicyChurn
from ktstr.work.compute import AluHot, AluWidth, IpcVariance, SmtSiblingSpin
from ktstr.work.cpu import Bursty, Mixed, SpinWait, YieldHeavy
from ktstr.work.custom import Custom, WorkerCtx
from ktstr.work.fanout import EpollStorm, FanOutCompute, FutexFanOut, ThunderingHerd
from ktstr.work.io import IoConvoy, IoRandRead, IoSyncWrite
from ktstr.work.locks import (
    AsymmetricWaker,
    FutexLockMode,
    MutexContention,
    PriorityInversion,
    ProducerConsumerImbalance,
    SchedClass,
)
from ktstr.work.loop import StopSignal, WorkLoop
from ktstr.work.memory import CachePressure, CacheYield, PageFaultChurn
from ktstr.work.numa import NumaMigrationChurn, NumaWorkingSetSweep
from ktstr.work.policy import CloneMode, SchedPolicy
from ktstr.work.rt import PreemptStorm, RtStarvation
from ktstr.work.schbench import Schbench, SchbenchConfig
from ktstr.work.sequence import AluHotPhase, Io, Phase, Sequence, Sleep, Spin, Yield
from ktstr.work.taobench import Taobench, TaobenchConfig
from ktstr.work.taskchurn import AffinityChurn, ForkExit, IdleChurn, NiceSweep
from ktstr.work.timers import IrqWake, NetTraffic, SignalStorm, TimerLatency
from ktstr.work.wake import CachePipe, FutexPingPong, PipeIo

__all__ = [
    "AffinityChurn",
    "AluHot",
    "AluHotPhase",
    "AluWidth",
    "AsymmetricWaker",
    "Bursty",
    "CachePipe",
    "CachePressure",
    "CacheYield",
    "CgroupAttachStorm",
    "CgroupChurn",
    "CloneMode",
    "CrossAffinityChurn",
    "Custom",
    "EpollStorm",
    "FanOutCompute",
    "ForkExit",
    "FutexFanOut",
    "FutexLockMode",
    "FutexPingPong",
    "IdleChurn",
    "Io",
    "IoConvoy",
    "IoRandRead",
    "IoSyncWrite",
    "IpcVariance",
    "IrqWake",
    "Mixed",
    "MutexContention",
    "NetTraffic",
    "NiceSweep",
    "NumaMigrationChurn",
    "NumaWorkingSetSweep",
    "PageFaultChurn",
    "Phase",
    "PipeIo",
    "PolicyChurn",
    "PreemptStorm",
    "PriorityInversion",
    "ProducerConsumerImbalance",
    "RtStarvation",
    "Schbench",
    "SchbenchConfig",
    "SchedClass",
    "SchedPolicy",
    "Sequence",
    "SignalStorm",
    "Sleep",
    "SmtSiblingSpin",
    "Spin",
    "SpinWait",
    "StopSignal",
    "Taobench",
    "TaobenchConfig",
    "ThunderingHerd",
    "TimerLatency",
    "WakeChain",
    "WakeMechanism",
    "WorkLoop",
    "WorkType",
    "WorkerCtx",
    "Yield",
    "YieldHeavy",
    "seconds",
]
