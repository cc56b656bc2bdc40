"""ktstr: a test harness for Linux process schedulers (sched_ext and EEVDF).

`from ktstr import *` is the prelude of the public API: the decorator, the
scenario language, the checks, the scheduler definitions and the errors. Work
types live in `ktstr.work` (`from ktstr import work`).

The root is lazy: a name is imported from its defining module the first time
it is read. Importing one low module (`import ktstr.system.fs`, as the guest's
init and the readers' tests do) therefore loads that module and what it needs,
not the whole API. `_PUBLIC` maps each name to its home; the `TYPE_CHECKING`
block says the same to type checkers, and tests/unit/test_package_root.py keeps
the two in step.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ktstr import work
    from ktstr.checks import Assert, AssertResult
    from ktstr.errors import ConfigError, HostSetupError, KernelError, KtstrError
    from ktstr.gauntlet import TopologyConstraints
    from ktstr.payloads import (
        MetricCheck,
        MetricHint,
        OutputFormat,
        Payload,
        PayloadResult,
        Polarity,
    )
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

#: Public name -> the module that defines it (the name itself for a subpackage).
_PUBLIC: dict[str, str] = {
    "work": "ktstr.work",
    **dict.fromkeys(["Assert", "AssertResult"], "ktstr.checks"),
    **dict.fromkeys(["ConfigError", "HostSetupError", "KernelError", "KtstrError"],
                    "ktstr.errors"),
    "TopologyConstraints": "ktstr.gauntlet",
    **dict.fromkeys(["MetricCheck", "MetricHint", "OutputFormat", "Payload", "PayloadResult",
                     "Polarity"], "ktstr.payloads"),
    **dict.fromkeys(["Backdrop", "CgroupDef", "CgroupManager", "CpusetSpec", "Ctx", "HoldSpec",
                     "Op", "Snapshot", "SnapshotMap", "Step", "TestTopology", "collect_all",
                     "dfl_wl", "execute_defs", "execute_steps", "setup_cgroups",
                     "spawn_diverse"], "ktstr.scenario"),
    **dict.fromkeys(["Scheduler", "SchedulerSpec", "declare_scheduler"], "ktstr.scheduler"),
    **dict.fromkeys(["KtstrTest", "ktstr_test"], "ktstr.testdef"),
    "Topology": "ktstr.topology",
    **dict.fromkeys(["CloneMode", "SchedPolicy", "WorkType"], "ktstr.work"),
    **dict.fromkeys(["AffinityIntent", "WakeLatency", "WorkerReport", "WorkloadConfig",
                     "WorkloadHandle"], "ktstr.workload"),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    home = _PUBLIC.get(name)
    if home is None:
        raise AttributeError(f"module 'ktstr' has no attribute {name!r}")
    module = importlib.import_module(home)
    value = module if home == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value  # read once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
