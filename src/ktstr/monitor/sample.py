"""What one look at the guest kernel holds: the contract between the sampler and the checks.

The sampler (a host thread per VM) builds a `MonitorSample` every ~100 ms from the
guest's runqueues and sched_ext state, read from guest RAM without stopping the
guest, plus each vCPU thread's host CPU time (from /proc of the qemu process). The
checks (monitor/verdict.py) judge a list of them and never read anything else, so
they can be tested on synthetic series.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CpuSample:
    """One guest CPU's runqueue at the moment of the sample (`struct rq` fields)."""

    cpu: int
    nr_running: int  # rq->nr_running: every runnable task of every class
    clock_ns: int  # rq->clock: stops while the CPU is idle (NOHZ) or its vCPU descheduled
    scx_nr_running: int  # rq->scx.nr_running
    local_dsq_depth: int  # rq->scx.local_dsq.nr
    curr_pid: int  # rq->curr->pid (0: the idle task)
    curr_comm: str  # rq->curr->comm
    vcpu_cpu_ns: int | None = None  # host CPU time of this vCPU's qemu thread, if known


@dataclass(frozen=True, slots=True)
class MonitorSample:
    """One look at every CPU, stamped with the host's monotonic time.

    `attached` is True when a sched_ext scheduler was enabled at the sample
    (`scx_root` set and its state enabled); `events` are the sched_ext event
    counters behind `scx_root`, summed over CPUs (`SCX_EV_SELECT_CPU_FALLBACK` as
    "select_cpu_fallback", "dispatch_keep_last", ...), empty when detached.
    """

    index: int  # 0, 1, 2, ... in the order taken
    t: float  # host time.monotonic() at the sample, seconds
    jiffies: int
    attached: bool
    cpus: tuple[CpuSample, ...]
    events: dict[str, int] = field(default_factory=dict)
    ops_name: str = ""  # the attached scheduler's ops name, "" when detached

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorSample:
        return cls(**{**d, "cpus": tuple(CpuSample(**c) for c in d["cpus"])})
