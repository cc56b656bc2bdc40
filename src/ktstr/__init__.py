"""ktstr: a test harness for Linux process schedulers (sched_ext and EEVDF).

`from ktstr import *` is the prelude of API.md: the decorator, the scenario
language, the checks, the scheduler definitions and the errors. Work types
live in `ktstr.work` (`from ktstr import work`).
"""

from ktstr import work
from ktstr.checks import Assert, AssertResult
from ktstr.errors import ConfigError, HostSetupError, KernelError, KtstrError
from ktstr.payloads import MetricCheck, MetricHint, OutputFormat, Payload, PayloadResult, Polarity
from ktstr.scenario import (
    Backdrop,
    CgroupDef,
    CgroupManager,
    CpusetSpec,
    Ctx,
    HoldSpec,
    Op,
    Snapshot,
    SnapshotMap,
    Step,
    TestTopology,
    collect_all,
    dfl_wl,
    execute_defs,
    execute_steps,
    setup_cgroups,
    spawn_diverse,
)
from ktstr.scheduler import Scheduler, SchedulerSpec, declare_scheduler
from ktstr.testdef import KtstrTest, ktstr_test
from ktstr.topology import Topology
from ktstr.work import CloneMode, SchedPolicy, WorkType
from ktstr.workload import (
    AffinityIntent,
    WakeLatency,
    WorkerReport,
    WorkloadConfig,
    WorkloadHandle,
)

__all__ = [
    "AffinityIntent",
    "Assert",
    "AssertResult",
    "Backdrop",
    "CgroupDef",
    "CgroupManager",
    "CloneMode",
    "ConfigError",
    "CpusetSpec",
    "Ctx",
    "HoldSpec",
    "HostSetupError",
    "KernelError",
    "KtstrError",
    "KtstrTest",
    "MetricCheck",
    "MetricHint",
    "Op",
    "OutputFormat",
    "Payload",
    "PayloadResult",
    "Polarity",
    "SchedPolicy",
    "Scheduler",
    "SchedulerSpec",
    "Snapshot",
    "SnapshotMap",
    "Step",
    "TestTopology",
    "Topology",
    "WakeLatency",
    "WorkType",
    "WorkerReport",
    "WorkloadConfig",
    "WorkloadHandle",
    "collect_all",
    "declare_scheduler",
    "dfl_wl",
    "execute_defs",
    "execute_steps",
    "ktstr_test",
    "setup_cgroups",
    "spawn_diverse",
    "work",
]
