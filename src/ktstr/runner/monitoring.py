"""The host-side monitor of one VM run: sample the guest kernel, hold its watchdog, judge.

Started once the guest has its orders: a thread opens the guest kernel from its
RAM (ktstr.monitor: vmcoreinfo, symbols, BTF; seconds the first time per kernel
build, then cached), then samples every runqueue every 100 ms with each vCPU's
host CPU time. While a sched_ext scheduler is attached, the test's
`watchdog_timeout_s` is written to `scx_root->watchdog_timeout` and read back,
again after every scheduler load (the struct is reallocated then). After the
run the series is judged (ktstr.monitor.checks) with the test's merged checks.
A guest kernel the monitor cannot read makes it unavailable, with the reason in
the result; it never fails or stops the run.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ktstr.checks import Assert, AssertResult
from ktstr.monitor.checks import judge_monitor
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.guestmem import GuestMemory
from ktstr.monitor.rqreader import RqReader, write_watchdog_timeout
from ktstr.monitor.sample import MonitorSample
from ktstr.monitor.sampler import Look, MonitorThread
from ktstr.monitor.vcpus import VcpuClock, vcpu_threads


@dataclass
class WatchdogOverride:
    """The test's watchdog timeout, applied to each scheduler as it attaches."""

    requested_s: float
    hz: int
    observed_s: float | None = None
    applied: int = 0  # schedulers it was written to
    note: str = ""
    _last_root: int = 0

    def apply(self, kernel: GuestKernel) -> None:
        root = kernel.scx_root()
        if not root or root == self._last_root:
            return
        self._last_root = root
        back = write_watchdog_timeout(kernel, max(1, round(self.requested_s * self.hz)))
        if back is None:
            self.note = "this kernel has no watchdog timeout the host can write"
            return
        self.applied += 1
        self.observed_s = back / self.hz


@dataclass
class MonitorOutcome:
    """What the sidecar keeps of the monitor."""

    available: bool
    reason: str = ""  # why not, or why sampling stopped early
    samples: list[MonitorSample] = field(default_factory=list)
    sample_cost_us: dict[str, float] = field(default_factory=dict)  # median, max
    watchdog: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason,
                "sample_cost_us": self.sample_cost_us, "watchdog": self.watchdog,
                "samples": [s.to_dict() for s in self.samples]}


class RunMonitor:
    def __init__(self, memory_fds: list[int], qemu_pid: int | None,
                 qmp: Callable[..., Any], nr_cpus: int, *,
                 watchdog: WatchdogOverride | None) -> None:
        self._fds = list(memory_fds)
        self._nr_cpus = nr_cpus
        self._watchdog = watchdog
        self._mem: GuestMemory | None = None
        # Set once the thread has opened the guest kernel; snapshots share it (valid
        # until stop()).
        self.kernel: GuestKernel | None = None
        clock = None
        if qemu_pid is not None:
            clock = VcpuClock(qemu_pid, vcpu_threads(qmp)).read
        self._thread = MonitorThread(prepare=self._open, vcpu_time=clock)

    def start(self) -> RunMonitor:
        self._thread.start()
        return self

    def stop(self) -> MonitorOutcome:
        samples = self._thread.stop()
        self.kernel = None
        if self._mem is not None:
            self._mem.close()
        costs = [c * 1e6 for c in self._thread.sample_cost_s]
        wd = self._watchdog
        return MonitorOutcome(
            available=bool(samples) or self._thread.error is None,
            reason=self._thread.error or "", samples=samples,
            sample_cost_us={"median": statistics.median(costs), "max": max(costs)}
            if costs else {},
            watchdog={} if wd is None else {"requested_s": wd.requested_s,
                                              "observed_s": wd.observed_s,
                                              "applied": wd.applied, "note": wd.note})

    def _open(self) -> Look:
        self._mem = GuestMemory.from_fds(self._fds)
        kernel = GuestKernel.open(self._mem, self._nr_cpus)
        reader = RqReader(kernel)
        self.kernel = kernel
        watchdog = self._watchdog
        if watchdog is None:
            return reader.sample

        def look() -> MonitorSample:
            sample = reader.sample()
            if sample.attached:
                watchdog.apply(kernel)
            return sample
        return look


def judge(outcome: MonitorOutcome, checks: Assert, *, scheduler_expected: bool) -> AssertResult:
    """The monitor's verdict on the run; an unavailable monitor is said, not judged."""
    if not outcome.samples:
        result = AssertResult.ok()
        if scheduler_expected:
            result.add_inconclusive(f"monitor: no samples ({outcome.reason or 'none taken'})")
        return result
    wd = outcome.watchdog
    return judge_monitor(outcome.samples, checks, scheduler_expected=scheduler_expected,
                         watchdog_requested_s=wd.get("requested_s"),
                         watchdog_observed_s=wd.get("observed_s"),
                         watchdog_note=wd.get("note", ""))
