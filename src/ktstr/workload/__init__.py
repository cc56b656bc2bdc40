"""Forking worker processes into cgroups and collecting what they did.

`WorkloadConfig` says what to fork, `WorkloadHandle.spawn(cfg, cgroup_dir=...)`
forks the workers (each joins its cgroup and says ready before any work),
`start()` releases them, `stop_and_collect()` returns one `WorkerReport` per
worker with the kernel's view of its run. The work types live in `ktstr.work`.
"""

from ktstr.work import WorkerCtx, WorkType
from ktstr.work.report import WakeLatency, WorkerReport
from ktstr.workload.affinity import AffinityIntent
from ktstr.workload.config import WorkloadConfig
from ktstr.workload.handle import WorkloadHandle

__all__ = [
    "AffinityIntent",
    "WakeLatency",
    "WorkType",
    "WorkerCtx",
    "WorkerReport",
    "WorkloadConfig",
    "WorkloadHandle",
]
