"""`Assert`: the thresholds a test is checked against, and the merge chain.

Every field is optional; `None` means "not set here", so layers compose:

    Assert.default_checks(emulated) -> scheduler's checks -> the test's own

with `a.merge(b)` letting b's set fields win (the Rust ktstr's `Assert::merge`,
of which `Assert.NO_OVERRIDES` is the identity). A layer turns a default check
off by setting it explicitly (`not_starved=False`), not by leaving it unset.

`not_starved` gates three checks at once, as in the Rust ktstr: starvation,
the fairness spread and the scheduling gap. A spread or gap threshold left
unset falls back to the profile's default. The monitor fields
(`max_imbalance_ratio` ... `sustained_samples`) are carried here so one
merged object describes a test, but they are judged by the host-side monitor,
not by `assert_cgroup`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence, Set
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, NoReturn

from ktstr.checks import cgroup_checks as cc
from ktstr.checks import profile as prof
from ktstr.checks.result import AssertResult
from ktstr.checks.stats import cgroup_stats
from ktstr.errors import ConfigError
from ktstr.validators import is_number
from ktstr.work.report import WorkerReport

_BOOL_FIELDS = frozenset({"not_starved", "isolation", "fail_on_stall"})
_INT_FIELDS = frozenset({"max_dsq_depth", "sustained_samples"})
_NOT_THRESHOLDS = frozenset({"profile"})


@dataclass(frozen=True, slots=True)
class Assert:
    """Check thresholds; units: percent, milliseconds, microseconds, events per second."""

    not_starved: bool | None = None  # starvation + spread + gap checks
    max_spread_pct: float | None = None  # max - min off-CPU %, percentage points
    max_gap_ms: float | None = None  # longest gap between work-unit checkpoints
    isolation: bool | None = None  # workers stay inside the cgroup's cpuset
    max_throughput_cv: float | None = None  # CV of work units per CPU-second
    min_work_rate: float | None = None  # work units per CPU-second, each worker
    max_p99_wake_latency_us: float | None = None  # each worker's p99 wake latency
    max_imbalance_ratio: float | None = None  # monitor: max/max(1, min) nr_running
    max_dsq_depth: int | None = None  # monitor: local DSQ depth
    fail_on_stall: bool | None = None  # monitor: rq_clock stall fails the test
    max_fallback_rate: float | None = None  # monitor: select_cpu fallbacks per second
    max_keep_last_rate: float | None = None  # monitor: dispatch keep-last per second
    sustained_samples: int | None = None  # monitor: consecutive samples a violation needs
    min_numa_locality: float | None = None  # fraction of pages on the expected nodes, 0..1
    profile: str | None = None  # "release" or "emulation"; set by default_checks

    NO_OVERRIDES: ClassVar[Assert]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                _validate(f.name, value)

    @classmethod
    def default_checks(cls, emulated: bool = False) -> Assert:
        """The default thresholds; `emulated` picks the emulation profile (looser spread/gap)."""
        profile = prof.EMULATION if emulated else prof.RELEASE
        return cls(
            not_starved=True,
            max_spread_pct=prof.spread_threshold_pct(profile),
            max_gap_ms=prof.gap_threshold_ms(profile),
            isolation=False,
            max_imbalance_ratio=4.0,
            max_dsq_depth=50,
            fail_on_stall=True,
            max_fallback_rate=200.0,
            max_keep_last_rate=100.0,
            sustained_samples=5,
            profile=profile,
        )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The threshold fields a test may set by keyword (all but `profile`)."""
        return tuple(f.name for f in fields(cls) if f.name not in _NOT_THRESHOLDS)

    def merge(self, other: Assert) -> Assert:
        """A new Assert: `other`'s set fields, this one's for the rest."""
        merged = {
            f.name: (
                getattr(other, f.name)
                if getattr(other, f.name) is not None
                else getattr(self, f.name)
            )
            for f in fields(self)
        }
        return Assert(**merged)

    def to_dict(self) -> dict[str, Any]:
        """The set fields only (JSON-able), for shipping to the guest."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Assert:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(
                f"unknown check field(s) {', '.join(unknown)}: not an Assert threshold; "
                f"hint: use one of {', '.join(cls.field_names())}"
            )
        return cls(**d)

    def assert_cgroup(
        self,
        reports: Sequence[WorkerReport],
        cpuset: Set[int] | None = None,
        *,
        name: str = "",
    ) -> AssertResult:
        """Run the enabled worker checks on one cgroup's reports.

        `cpuset` is the set the workers were confined to (None: no constraint,
        isolation not checked); `name` only labels the stats entry.
        """
        profile = self.profile or prof.RELEASE
        result = AssertResult(profile=profile)
        stats = cgroup_stats(reports, name)
        result.stats.cgroups.append(stats)
        result.reports.extend(reports)
        cc.check_worker_errors(reports, result)
        if self.not_starved:
            cc.check_starvation(reports, result)
            spread = self.max_spread_pct
            cc.check_spread(
                reports,
                stats,
                prof.spread_threshold_pct(profile) if spread is None else spread,
                result,
            )
            gap = self.max_gap_ms
            cc.check_gaps(reports, prof.gap_threshold_ms(profile) if gap is None else gap, result)
        if self.isolation and cpuset is not None:
            cc.check_isolation(reports, cpuset, result)
        if self.max_throughput_cv is not None:
            cc.check_throughput_cv(reports, self.max_throughput_cv, profile, result)
        if self.min_work_rate is not None:
            cc.check_work_rate(reports, self.min_work_rate, profile, result)
        if self.max_p99_wake_latency_us is not None:
            cc.check_wake_latency(reports, self.max_p99_wake_latency_us, result)
        return result


Assert.NO_OVERRIDES = Assert()


def _validate(name: str, value: object) -> None:
    """Raise ConfigError naming the field and value unless `value` suits `name`."""
    if name == "profile":
        if value not in prof.PROFILES:
            _bad(name, value, "not a threshold profile", f"use one of {', '.join(prof.PROFILES)}")
        return
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            _bad(name, value, "must be True or False", f"write {name}=True or {name}=False")
        return
    if not is_number(value):
        _bad(name, value, "must be a number", f"write e.g. {name}=10")
    if name in _INT_FIELDS and not isinstance(value, int):
        _bad(name, value, "must be a whole number", f"write e.g. {name}={int(value)}")
    if not math.isfinite(value):
        _bad(name, value, "must be finite", "give a finite number")
    if value < 0:
        _bad(name, value, "a threshold cannot be negative", "use 0 or a positive value")
    if name == "max_spread_pct" and value > 100:
        _bad(
            name,
            value,
            "a spread of off-CPU percentages cannot exceed 100",
            "use a value between 0 and 100",
        )
    if name == "sustained_samples" and value < 1:
        _bad(name, value, "a violation must hold for at least one sample", "use 1 or more")
    if name == "min_numa_locality" and value > 1:
        _bad(name, value, "locality is a fraction of pages", "use a value between 0.0 and 1.0")


def _bad(name: str, value: object, why: str, hint: str) -> NoReturn:
    raise ConfigError(f"check threshold {name}={value!r} is invalid: {why}; hint: {hint}")
