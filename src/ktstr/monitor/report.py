"""`MonitorSummary`: a sample series in figures, for the `--- monitor ---` block and the sidecar.

Telemetry, not a verdict: it is computed (by `monitor.verdict.summarize_monitor`)
whatever the thresholds and however the checks end, so a passing run still shows
how close it came. Counts are events over the judged window (warm-up dropped,
only while a sched_ext scheduler was attached); rates are those counts per second
of host time over the intervals that could be measured; peaks are the worst
single interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class WatchdogResult:
    """What became of the test's `watchdog_timeout_s` in the guest kernel: written by the
    host's monitor to each sched_ext scheduler it saw attach, and read back."""

    requested_s: float  # the test's watchdog_timeout_s
    observed_s: float | None = None  # read back after the last write; None: never written
    applied: int = 0  # schedulers it was written to
    note: str = ""  # why it was not read back, or anything else worth saying

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WatchdogResult:
        observed = d.get("observed_s")
        return cls(requested_s=float(d["requested_s"]),
                   observed_s=None if observed is None else float(observed),
                   applied=int(d.get("applied", 0)), note=str(d.get("note", "")))

    def account(self) -> str:
        """One line for the scheduler's report."""
        if self.note:
            return self.note
        return (f"watchdog_timeout_s={self.requested_s:g} requested, "
                + (f"{self.observed_s:g} read back" if self.observed_s is not None
                   else "not applied (no scheduler seen attached by the monitor)"))


@dataclass(frozen=True, slots=True)
class MonitorSummary:
    """What the monitor saw; -1 marks a CPU or sample that does not exist."""

    samples: int = 0  # taken, warm-up included
    warmup_dropped: int = 0
    judged: int = 0  # after warm-up, taken while a sched_ext scheduler was attached
    detached: int = 0  # after warm-up, no scheduler attached
    duration_s: float = 0.0  # host time from the first to the last judged sample
    ops_names: tuple[str, ...] = ()  # the attached schedulers, in order of appearance
    max_imbalance_ratio: float = 0.0
    max_imbalance_sample: int = -1
    avg_imbalance_ratio: float = 0.0
    avg_nr_running: float = 0.0  # per CPU per judged sample
    max_dsq_depth: int = 0
    max_dsq_cpu: int = -1
    max_dsq_sample: int = -1
    stall_intervals: int = 0  # (CPU, interval) pairs with a stall, sustained or not
    stalled_cpus: tuple[int, ...] = ()
    events: dict[str, int] = field(default_factory=dict)  # counter deltas over the window
    event_rates: dict[str, float] = field(default_factory=dict)  # per second, whole window
    peak_rates: dict[str, float] = field(default_factory=dict)  # per second, worst interval
    stall_min_vcpu_ns: int = 0  # host CPU a vCPU needs in an interval for a still clock to count
    watchdog: WatchdogResult | None = None  # None: not overridden

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorSummary:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for name in ("ops_names", "stalled_cpus"):
            if name in kw:
                kw[name] = tuple(kw[name])
        if kw.get("watchdog") is not None:
            kw["watchdog"] = WatchdogResult.from_dict(kw["watchdog"])
        return cls(**kw)

    def render_lines(self) -> list[str]:
        """The body of the `--- monitor ---` block (AssertResult adds the header)."""
        if not self.samples:
            return ["samples: none taken", self._watchdog_line()]
        ops = f" ({', '.join(self.ops_names)})" if self.ops_names else ""
        lines = [
            f"samples: {self.samples} taken, {self.warmup_dropped} warm-up dropped, "
            f"{self.judged} judged while attached{ops}, {self.detached} detached, "
            f"over {self.duration_s:.1f}s"
        ]
        if self.judged:
            lines += [
                f"imbalance: max {self.max_imbalance_ratio:.1f} (sample "
                f"{self.max_imbalance_sample}), avg {self.avg_imbalance_ratio:.1f}; "
                f"avg nr_running {self.avg_nr_running:.1f}",
                f"local DSQ depth: max {self.max_dsq_depth} on cpu{self.max_dsq_cpu} "
                f"(sample {self.max_dsq_sample})",
                f"rq_clock stalls: {self.stall_intervals} cpu-intervals"
                + (f" on {', '.join(f'cpu{c}' for c in self.stalled_cpus)}"
                   if self.stalled_cpus else "")
                + f" (a vCPU needs {self.stall_min_vcpu_ns / 1e6:.0f}ms of host CPU per "
                "interval to count)",
                "events: " + (", ".join(
                    f"{name} {count} ({self.event_rates.get(name, 0.0):.1f}/s, peak "
                    f"{self.peak_rates.get(name, 0.0):.1f}/s)"
                    for name, count in self.events.items()) or "none read"),
            ]
        lines.append(self._watchdog_line())
        return lines

    def _watchdog_line(self) -> str:
        wd = self.watchdog
        if wd is None:
            return "watchdog: not overridden"
        text = f"watchdog: requested {_secs(wd.requested_s)}, read back {_secs(wd.observed_s)}"
        return f"{text} ({wd.note})" if wd.note else text


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:g}s"
