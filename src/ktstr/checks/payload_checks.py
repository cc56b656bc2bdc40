"""Payload checks: `MetricCheck` and the verdict on one payload run.

A payload (ktstr.payloads) is an external binary run inside the guest; what it
leaves behind is a `PayloadResult` (in result.py, beside the `AssertResult` that
holds it and that it turns into): exit code or signal, the numeric metrics
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ktstr.checks.result import metric_text, signal_name
from ktstr.errors import ConfigError
from ktstr.validators import is_int, is_number


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
            out.append(f"payload {name}: metric '{c.metric}' = {metric_text(value)} below minimum "
                       f"{metric_text(c.lo)}")
        elif c.kind == "max" and c.hi is not None and value > c.hi:
            out.append(f"payload {name}: metric '{c.metric}' = {metric_text(value)} exceeds "
                       f"maximum {metric_text(c.hi)}")
        elif c.kind == "range" and c.lo is not None and c.hi is not None \
                and not c.lo <= value <= c.hi:
            out.append(f"payload {name}: metric '{c.metric}' = {metric_text(value)} outside "
                       f"[{metric_text(c.lo)}, {metric_text(c.hi)}]")
    return out
