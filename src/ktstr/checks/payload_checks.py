"""Payload checks: `MetricCheck`, the record of one payload run, and its verdict.

A payload (ktstr.payloads) is an external binary run inside the guest; what it
leaves behind is a `PayloadResult`: exit code or signal, the numeric metrics
taken from its output (dotted paths, `jobs.0.read.iops`), and the detail lines
of the checks that failed. Checks are evaluated in this order: `exit_code_eq`
first, and a mismatch stops there (a binary that failed to run has no metrics
worth judging); then `min`/`max`/`range`/`exists`, where a missing metric is a
failure, never a silent pass.

Detail lines name the payload, the metric, its value and the bound:
`payload stress-ng: metric 'metrics.0.bogo-ops' = 12 below minimum 100`,
`payload false: exited with code 1, expected 0; stderr: ...`.
"""

from __future__ import annotations

import math
import signal as signal_mod
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ktstr.errors import ConfigError
from ktstr.validators import is_int, is_number

if TYPE_CHECKING:
    from ktstr.checks.result import AssertResult

#: Captured output kept in a result (the tail: a failing tool says why at its end).
OUTPUT_TAIL_CHARS = 2048
#: Metrics listed by name in the report when a payload has no checks or hints naming them.
REPORT_METRICS = 12


def _number(what: str, value: object) -> float:
    if not is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{what}={value!r} is not a finite number; hint: pass e.g. 1.0")
    return float(value)


def _metric_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}: metric name {name!r} is empty; hint: name a dotted path "
                          "of the payload's output, e.g. 'jobs.0.read.iops'")
    return name


@dataclass(frozen=True, slots=True)
class MetricCheck:
    """One assertion on a payload's exit code or on one of its metrics."""

    kind: str  # "min" | "max" | "range" | "exists" | "exit_code_eq"
    metric: str = ""
    lo: float | None = None
    hi: float | None = None
    expected: int = 0

    @classmethod
    def min(cls, name: str, value: float) -> MetricCheck:
        """Fail when metric `name` is below `value` (or missing)."""
        return cls("min", _metric_name("MetricCheck.min", name),
                   lo=_number("MetricCheck.min value", value))

    @classmethod
    def max(cls, name: str, value: float) -> MetricCheck:
        """Fail when metric `name` exceeds `value` (or is missing)."""
        return cls("max", _metric_name("MetricCheck.max", name),
                   hi=_number("MetricCheck.max value", value))

    @classmethod
    def range(cls, name: str, lo: float, hi: float) -> MetricCheck:
        """Fail when metric `name` is outside `[lo, hi]` (inclusive) or missing."""
        low = _number("MetricCheck.range lo", lo)
        high = _number("MetricCheck.range hi", hi)
        if low > high:
            raise ConfigError(f"MetricCheck.range({name!r}, {lo!r}, {hi!r}): lo > hi is an "
                              "empty interval no value can satisfy; hint: swap the bounds")
        return cls("range", _metric_name("MetricCheck.range", name), lo=low, hi=high)

    @classmethod
    def exists(cls, name: str) -> MetricCheck:
        """Fail when metric `name` is absent from the output (any value passes)."""
        return cls("exists", _metric_name("MetricCheck.exists", name))

    @classmethod
    def exit_code_eq(cls, code: int) -> MetricCheck:
        """Fail when the payload's exit code is not `code` (a death by signal never is)."""
        if not is_int(code):
            raise ConfigError(f"MetricCheck.exit_code_eq({code!r}): the exit code must be an "
                              "integer; hint: e.g. MetricCheck.exit_code_eq(0)")
        return cls("exit_code_eq", expected=code)


def _fmt(v: float) -> str:
    return f"{v:g}"


def signal_name(sig: int) -> str:
    try:
        return signal_mod.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def evaluate(name: str, checks: Iterable[MetricCheck], exit_code: int | None,
             sig: int | None, metrics: Mapping[str, float], stderr: str = "") -> list[str]:
    """The detail lines of every failed check (empty: all passed); see the module doc."""
    checks = list(checks)
    for c in checks:
        if c.kind == "exit_code_eq" and exit_code != c.expected:
            how = (f"killed by {signal_name(sig)}" if sig is not None
                   else f"exited with code {exit_code}")
            line = f"payload {name}: {how}, expected {c.expected}"
            tail = stderr.strip()[-512:]
            return [f"{line}; stderr: {tail}" if tail else line]
    out: list[str] = []
    for c in checks:
        if c.kind == "exit_code_eq":
            continue
        value = metrics.get(c.metric)
        if value is None:
            out.append(f"payload {name}: metric '{c.metric}' not found in payload output")
        elif c.kind == "min" and c.lo is not None and value < c.lo:
            out.append(f"payload {name}: metric '{c.metric}' = {_fmt(value)} below minimum "
                       f"{_fmt(c.lo)}")
        elif c.kind == "max" and c.hi is not None and value > c.hi:
            out.append(f"payload {name}: metric '{c.metric}' = {_fmt(value)} exceeds maximum "
                       f"{_fmt(c.hi)}")
        elif c.kind == "range" and c.lo is not None and c.hi is not None \
                and not c.lo <= value <= c.hi:
            out.append(f"payload {name}: metric '{c.metric}' = {_fmt(value)} outside "
                       f"[{_fmt(c.lo)}, {_fmt(c.hi)}]")
    return out


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
        from ktstr.checks.result import AssertResult  # result.py imports this module

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
            lines.append(f"  {n}={_fmt(self.metrics[n])}{' ' + unit if unit else ''}")
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
