"""`AssertResult`: the verdict of a scenario's checks, with the evidence.

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

from dataclasses import dataclass, field
from typing import Any

from ktstr.checks.payload_checks import PayloadResult
from ktstr.checks.stats import ScenarioStats
from ktstr.errors import KtstrError
from ktstr.work.report import WorkerReport


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
