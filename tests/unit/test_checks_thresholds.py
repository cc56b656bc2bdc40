"""Assert: defaults per profile, the merge chain, keyword surface, validation."""

from __future__ import annotations

import json

import pytest

from ktstr.checks import Assert
from ktstr.errors import ConfigError


def test_default_checks_release_values_match_seed() -> None:
    a = Assert.default_checks()
    assert a == Assert(
        not_starved=True,
        max_spread_pct=15.0,
        max_gap_ms=2000.0,
        isolation=False,
        max_imbalance_ratio=4.0,
        max_dsq_depth=50,
        fail_on_stall=True,
        max_fallback_rate=200.0,
        max_keep_last_rate=100.0,
        sustained_samples=5,
        profile="release",
    )
    assert a.max_throughput_cv is None
    assert a.min_work_rate is None
    assert a.max_p99_wake_latency_us is None
    assert a.min_numa_locality is None


def test_default_checks_emulated_loosens_spread_and_gap_only() -> None:
    rel, emu = Assert.default_checks(), Assert.default_checks(emulated=True)
    assert (emu.max_spread_pct, emu.max_gap_ms, emu.profile) == (35.0, 3000.0, "emulation")
    assert emu.merge(Assert(max_spread_pct=15.0, max_gap_ms=2000.0, profile="release")) == rel


def test_no_overrides_has_nothing_set_and_is_merge_identity() -> None:
    assert Assert.NO_OVERRIDES.to_dict() == {}
    d = Assert.default_checks()
    assert d.merge(Assert.NO_OVERRIDES) == d
    assert Assert.NO_OVERRIDES.merge(d) == d


def test_merge_chain_defaults_then_scheduler_then_test() -> None:
    sched = Assert(max_imbalance_ratio=5.0, max_gap_ms=2500.0)
    test = Assert(max_gap_ms=5000.0, isolation=True)
    merged = Assert.default_checks().merge(sched).merge(test)
    assert merged.not_starved is True  # from the defaults
    assert merged.max_imbalance_ratio == 5.0  # from the scheduler
    assert merged.max_gap_ms == 5000.0  # the test wins over the scheduler
    assert merged.isolation is True
    assert merged.max_dsq_depth == 50


def test_merge_explicit_false_turns_a_default_check_off() -> None:
    merged = Assert.default_checks().merge(Assert(not_starved=False, fail_on_stall=False))
    assert merged.not_starved is False
    assert merged.fail_on_stall is False


def test_merge_returns_new_object_and_leaves_operands_unchanged() -> None:
    a, b = Assert(max_gap_ms=1.0), Assert(max_gap_ms=2.0)
    m = a.merge(b)
    assert (a.max_gap_ms, b.max_gap_ms, m.max_gap_ms) == (1.0, 2.0, 2.0)


def test_field_names_lists_every_threshold_but_not_profile() -> None:
    names = Assert.field_names()
    assert "profile" not in names
    assert names[:3] == ("not_starved", "max_spread_pct", "max_gap_ms")
    for n in ("min_work_rate", "max_p99_wake_latency_us", "sustained_samples",
              "min_numa_locality", "max_dsq_depth", "max_keep_last_rate"):
        assert n in names
    assert len(names) == 14
    Assert(**{n: None for n in names})  # every name is a keyword


def test_to_dict_from_dict_round_trip_through_json() -> None:
    a = Assert.default_checks(emulated=True).merge(Assert(min_work_rate=1.0))
    assert Assert.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_from_dict_unknown_field_raises_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown check field.*max_spread_percent"):
        Assert.from_dict({"max_spread_percent": 10})


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"max_gap_ms": -1}, r"max_gap_ms=-1 is invalid: a threshold cannot be negative; hint"),
        ({"max_spread_pct": 120.0}, r"max_spread_pct=120.0 is invalid: .*cannot exceed 100"),
        ({"sustained_samples": 0}, r"sustained_samples=0 is invalid: .*at least one sample"),
        ({"sustained_samples": 2.5}, r"sustained_samples=2.5 is invalid: must be a whole number"),
        ({"max_dsq_depth": True}, r"max_dsq_depth=True is invalid: must be a number"),
        ({"max_throughput_cv": "0.5"}, r"max_throughput_cv='0.5' is invalid: must be a number"),
        ({"min_work_rate": float("nan")}, r"min_work_rate=nan is invalid: must be finite"),
        ({"not_starved": 1}, r"not_starved=1 is invalid: must be True or False"),
        ({"min_numa_locality": 1.5}, r"min_numa_locality=1.5 is invalid: locality"),
        ({"profile": "debug"}, r"profile='debug' is invalid: not a threshold profile"),
    ],
)
def test_invalid_values_raise_config_error_naming_field_and_value(
    kw: dict[str, object], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        Assert(**kw)  # type: ignore[arg-type]


def test_boundary_values_are_accepted() -> None:
    Assert(max_spread_pct=100.0, max_gap_ms=0, sustained_samples=1, min_numa_locality=1.0)
