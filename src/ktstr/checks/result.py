"""`AssertResult`: the verdict of a scenario's checks, with the evidence; and
`PayloadResult`, the record of one payload run, which an `AssertResult` carries
and which reads as one (`.result`): the two refer to each other, so they share
this module.

A result has three possible readings:

- passed, nothing inconclusive: every enabled check held;
- failed (`passed` False): `details` holds one line per violation, in the
  formats ktstr_test failure reports use (`tid 7 starved (0 work units)`, ...);
- inconclusive (`inconclusive` set): some check could not be judged (its data
  was untrustworthy, or the figure lies inside the noise of an emulated CPU).
  That never turns `passed` False, but it is shown by `str()` and `to_dict()`
  so nobody mistakes it for a clean pass.

Results of several cgroups are folded together with `merge` (in place: the
result of the first cgroup collects the others'). They cross the guest/host boundary as JSON
through `to_dict`/`from_dict`.
"""

from __future__ import annotations

import signal as signal_mod
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ktstr.checks.stats import ScenarioStats
from ktstr.errors import KtstrError
from ktstr.work.report import WorkerReport

#: Captured output kept in a result (the tail: a failing tool says why at its end).
OUTPUT_TAIL_CHARS = 2048
#: Metrics listed by name in the report when a payload has no checks or hints naming them.
REPORT_METRICS = 12


@dataclass(slots=True)
class AssertResult:
    """Pass/fail, detail lines, per-cgroup stats, and any inconclusive reason."""

    passed: bool = True
    details: list[str] = field(default_factory=list)
    stats: ScenarioStats = field(default_factory=ScenarioStats)
    inconclusive: str | None = None  # reasons, "; "-separated, when something was not judged
    profile: str | None = None  # threshold profile the checks ran under ("release"/"emulation")
    # Every WorkerReport the checks judged: the evidence behind the verdict, kept for
    # the sidecar (reports and comparisons read it, the terminal does not).
    reports: list[WorkerReport] = field(default_factory=list)
    # Every payload run of the scenario, judged or only recorded: its metrics go to the
    # sidecar and a `--- payloads ---` block of the report.
    payloads: list[PayloadResult] = field(default_factory=list)
    # The host-side monitor's `--- monitor ---` block body (ktstr.monitor builds it; kept
    # as text so this layer needs nothing from the monitor's).
    monitor: list[str] = field(default_factory=list)

    @classmethod
    def ok(cls) -> AssertResult:
        """A passing result with nothing to report."""
        return cls()

    @classmethod
    def fail(cls, *details: str) -> AssertResult:
        """A failing result carrying `details` (one line each)."""
        return cls(passed=False, details=list(details))

    def add_failure(self, detail: str) -> None:
        """Record one violation."""
        self.passed = False
        self.details.append(detail)

    def add_inconclusive(self, reason: str) -> None:
        """Record a check that could not be judged; `passed` is left as it is."""
        self.inconclusive = _join_reasons(self.inconclusive, reason)

    def merge(self, other: AssertResult) -> None:
        """Fold `other` into this result: both must pass; details, stats and reasons add up."""
        self.passed = self.passed and other.passed
        self.details.extend(other.details)
        self.stats.cgroups.extend(other.stats.cgroups)
        self.reports.extend(other.reports)
        self.payloads.extend(p for p in other.payloads
                             if not any(p is mine for mine in self.payloads))
        self.inconclusive = _join_reasons(self.inconclusive, other.inconclusive)
        if not self.monitor:
            self.monitor = list(other.monitor)
        if self.profile is None:
            self.profile = other.profile

    def __str__(self) -> str:
        """Detail lines (indented two spaces), then the `--- stats ---` block.

        The runner puts its own header (`ktstr_test 'name' [topo=...] failed:`) above.
        """
        lines = [f"  {d}" for d in self.details]
        if self.inconclusive:
            lines.append(f"  inconclusive: {self.inconclusive}")
        if self.stats.cgroups:
            if lines:
                lines.append("")
            lines.append(self.stats.render())
        if self.payloads:
            if lines:
                lines.append("")
            lines.append("--- payloads ---")
            lines.extend(line for p in self.payloads for line in p.render())
        if self.monitor:
            if lines:
                lines.append("")
            lines.append("--- monitor ---")
            lines.extend(self.monitor)
        if not lines:
            return "passed"
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; `from_dict` turns it back into an equal result."""
        return {
            "passed": self.passed,
            "details": list(self.details),
            "inconclusive": self.inconclusive,
            "profile": self.profile,
            "stats": self.stats.to_dict(),
            "reports": [r.to_dict() for r in self.reports],
            "payloads": [p.to_dict() for p in self.payloads],
            "monitor": list(self.monitor),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AssertResult:
        """Rebuild a result from `to_dict` output (e.g. a JSON line from the guest)."""
        try:
            passed = d["passed"]
            details = d.get("details", [])
            if not isinstance(passed, bool) or not isinstance(details, list):
                raise TypeError("'passed' must be a bool and 'details' a list")
            return cls(
                passed=passed,
                details=[str(x) for x in details],
                stats=ScenarioStats.from_dict(d.get("stats") or {}),
                inconclusive=d.get("inconclusive"),
                profile=d.get("profile"),
                reports=[WorkerReport.from_dict(r) for r in d.get("reports", [])],
                payloads=[PayloadResult.from_dict(p) for p in d.get("payloads", [])],
                monitor=[str(x) for x in d.get("monitor", [])],
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise KtstrError(
                f"cannot read a check result from {str(d)[:200]!r}: {err}; "
                "hint: the guest and host must run the same ktstr version"
            ) from err


def _join_reasons(a: str | None, b: str | None) -> str | None:
    if not a:
        return b or None
    if not b:
        return a
    return f"{a}; {b}"


def metric_text(v: float) -> str:
    """A metric as report lines show it (`%g`)."""
    return f"{v:g}"


def signal_name(sig: int) -> str:
    try:
        return signal_mod.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


@dataclass(slots=True)
class PayloadResult:
    """What one payload run left: how it ended, its metrics, its failed checks.

    `judged` says whether the verdict counts: a run through `ctx.payload` or the
    test's primary payload is judged; a run through `Op.run_payload` is recorded
    for the sidecar only (the checks of a payload started by an op never fail the test).
    """

    name: str
    argv: list[str] = field(default_factory=list)
    cgroup: str = ""  # "" : the runner's own cgroup
    pid: int = 0
    exit_code: int | None = None  # None when a signal ended it
    signal: int | None = None
    killed: bool = False  # ktstr sent the SIGKILL (Op.kill_payload, or still running at the end)
    wall_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    stream: str = ""  # the stream the metrics came from: "stdout", "stderr" or ""
    details: list[str] = field(default_factory=list)
    judged: bool = True
    stdout_tail: str = ""
    stderr_tail: str = ""
    units: dict[str, str] = field(default_factory=dict)  # from the payload's MetricHints
    shown: list[str] = field(default_factory=list)  # metrics the report names (checked, hinted)

    @property
    def passed(self) -> bool:
        return not self.details

    @property
    def result(self) -> AssertResult:
        """This run as a check result: its failed checks (when judged) and itself."""
        failed = self.judged and not self.passed
        return AssertResult(passed=not failed, details=list(self.details) if failed else [],
                            payloads=[self])

    def headline(self) -> str:
        """`stress-ng pid 812 in cg sng: exit 0 after 2.1s, 9 metrics` (one report line)."""
        where = f" in cg {self.cgroup}" if self.cgroup else ""
        if self.signal is not None:
            end = f"{'killed by' if self.killed else 'died of'} {signal_name(self.signal)}"
        else:
            end = f"exit {self.exit_code}"
        checks = "" if self.judged else " (recorded, not judged)"
        return (f"{self.name} pid {self.pid}{where}: {end} after {self.wall_s:.1f}s, "
                f"{len(self.metrics)} metrics{checks}")

    def render(self) -> list[str]:
        """The headline, then the metrics worth naming (checked/hinted ones, else the first)."""
        names = [n for n in self.shown if n in self.metrics] or \
            list(self.metrics)[:REPORT_METRICS]
        lines = [self.headline()]
        for n in names:
            unit = self.units.get(n, "")
            lines.append(f"  {n}={metric_text(self.metrics[n])}{' ' + unit if unit else ''}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PayloadResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def tail(text: str, limit: int = OUTPUT_TAIL_CHARS) -> str:
    """The end of `text`, marked with `...` when cut."""
    return text if len(text) <= limit else "..." + text[-limit:]
