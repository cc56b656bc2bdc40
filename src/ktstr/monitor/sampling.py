"""Sampling one VM run: the guest kernel's runqueues every 100 ms, and its watchdog held.

A thread opens the guest kernel from its RAM (vmcoreinfo, symbols, BTF; seconds
the first time per kernel build, then cached), then samples every runqueue
every 100 ms with each vCPU's host CPU time. While a sched_ext scheduler is
attached, the test's `watchdog_timeout_s` is written to
`scx_root->watchdog_timeout` and read back, again after every scheduler load
(the struct is reallocated then). After the run the series is judged
(ktstr.monitor.verdict) with the test's merged checks. A guest kernel the
monitor cannot read makes it unavailable, with the reason in the outcome; it
never fails or stops the run.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ktstr.checks import Assert, AssertResult
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.guestmem import GuestMemory
from ktstr.monitor.report import WatchdogResult
from ktstr.monitor.rqreader import RqReader, write_watchdog_timeout
from ktstr.monitor.sample import MonitorSample
from ktstr.monitor.sampler import Look, MonitorThread
from ktstr.monitor.vcpus import VcpuClock
from ktstr.monitor.verdict import judge_monitor
from ktstr.vm.qemu import vcpu_threads


@dataclass
class WatchdogOverride:
    """The test's `watchdog_timeout_s`, applied to each scheduler as it attaches."""

    watchdog_timeout_s: float
    hz: int  # the guest kernel's CONFIG_HZ: the timeout is written in jiffies
    observed_s: float | None = None
    applied: int = 0  # schedulers it was written to
    note: str = ""
    _last_root: int = 0

    def apply(self, kernel: GuestKernel) -> None:
        root = kernel.scx_root()
        if not root or root == self._last_root:
            return
        self._last_root = root
        back = write_watchdog_timeout(kernel, max(1, round(self.watchdog_timeout_s * self.hz)))
        if back is None:
            self.note = "this kernel has no watchdog timeout the host can write"
            return
        self.applied += 1
        self.observed_s = back / self.hz

    def result(self) -> WatchdogResult:
        return WatchdogResult(requested_s=self.watchdog_timeout_s, observed_s=self.observed_s,
                              applied=self.applied, note=self.note)


@dataclass(frozen=True)
class MonitorOutcome:
    """What the sidecar keeps of the monitor: `started` False when it never ran (off,
    or it could not start), with the reason."""

    available: bool
    reason: str = ""  # why not, or why sampling stopped early
    samples: list[MonitorSample] = field(default_factory=list)
    sample_cost_us: dict[str, float] = field(default_factory=dict)  # median, max
    watchdog: WatchdogResult | None = None  # None: not overridden
    started: bool = True

    @classmethod
    def not_started(cls, reason: str) -> MonitorOutcome:
        return cls(available=False, reason=reason, started=False)

    def to_dict(self) -> dict[str, Any]:
        if not self.started:
            return {"available": self.available, "reason": self.reason}
        return {"available": self.available, "reason": self.reason,
                "sample_cost_us": self.sample_cost_us,
                "watchdog": {} if self.watchdog is None else self.watchdog.to_dict(),
                "samples": [s.to_dict() for s in self.samples]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MonitorOutcome:
        if "samples" not in d:
            return cls.not_started(str(d.get("reason", "")))
        wd = d.get("watchdog") or None
        return cls(available=bool(d.get("available")), reason=str(d.get("reason", "")),
                   samples=[MonitorSample.from_dict(s) for s in d["samples"]],
                   sample_cost_us=dict(d.get("sample_cost_us") or {}),
                   watchdog=None if wd is None else WatchdogResult.from_dict(wd))


class RunMonitor:
    """The sampling thread of one run; `kernel` is the guest kernel once opened."""

    def __init__(self, memory_fds: list[int], qemu_pid: int | None,
                 qmp: Callable[..., Any], nr_cpus: int, *,
                 watchdog: WatchdogOverride | None) -> None:
        self._fds = list(memory_fds)
        self._nr_cpus = nr_cpus
        self._watchdog = watchdog
        self._mem: GuestMemory | None = None
        # Set once the thread has opened the guest kernel; captures share it (valid
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
        return MonitorOutcome(
            available=bool(samples) or self._thread.error is None,
            reason=self._thread.error or "", samples=samples,
            sample_cost_us={"median": statistics.median(costs), "max": max(costs)}
            if costs else {},
            watchdog=None if self._watchdog is None else self._watchdog.result())

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
    return judge_monitor(outcome.samples, checks, scheduler_expected=scheduler_expected,
                         watchdog=outcome.watchdog)


def watchdog_account(outcome: MonitorOutcome | None, watchdog_timeout_s: float) -> str:
    """What became of the test's `watchdog_timeout_s`, for its scheduler's report."""
    if outcome is None or outcome.watchdog is None:
        return (f"watchdog_timeout_s={watchdog_timeout_s:g} (the default) not applied "
                "under emulation: the scheduler's own timeout stands; set it in "
                "@ktstr_test to apply it")
    return outcome.watchdog.account()
