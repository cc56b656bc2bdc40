"""HoldSpec: the constructors, the validation rules and their exact messages."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from ktstr import HoldSpec
from ktstr.errors import ConfigError

FRAC_NOT_FINITE = "HoldSpec::Frac({}) is not finite (NaN/Inf) — would panic in " \
                  "Duration::from_secs_f64"
FRAC_NOT_POSITIVE = "HoldSpec::Frac({}) must be > 0.0; negative values panic in " \
                    "Duration::from_secs_f64 and zero is vacuous"
LOOP_ZERO = "HoldSpec::Loop { interval: Duration::ZERO } would busy-spin the deadline check " \
            "without yielding; use a non-zero interval"


def message(hold: HoldSpec) -> str:
    with pytest.raises(ConfigError) as info:
        hold.validate()
    return str(info.value)


def test_full_is_the_whole_duration_and_equals_frac_one() -> None:
    assert HoldSpec.FULL == HoldSpec.frac(1.0) == HoldSpec.frac(1)
    assert HoldSpec.FULL.seconds(7.5) == 7.5
    assert not HoldSpec.FULL.is_loop
    HoldSpec.FULL.validate()


@pytest.mark.parametrize(("hold", "duration", "seconds"), [
    (HoldSpec.frac(0.25), 8.0, 2.0),
    (HoldSpec.frac(2.0), 3.0, 6.0),  # more than the duration is allowed
    (HoldSpec.fixed(1.5), 100.0, 1.5),
    (HoldSpec.fixed(timedelta(milliseconds=250)), 100.0, 0.25),
    (HoldSpec.loop_at(0.1), 100.0, 0.1),
])
def test_seconds_resolves_against_the_duration_only_for_frac(
        hold: HoldSpec, duration: float, seconds: float) -> None:
    assert hold.seconds(duration) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_frac_not_finite_is_refused(value: float) -> None:
    shown = {"nan": "NaN", "inf": "inf", "-inf": "-inf"}[repr(value)]
    assert message(HoldSpec.frac(value)) == FRAC_NOT_FINITE.format(shown)


@pytest.mark.parametrize(("value", "shown"), [(0.0, "0"), (-0.0, "-0"), (-0.5, "-0.5"),
                                              (-3.0, "-3")])
def test_frac_zero_or_negative_is_refused(value: float, shown: str) -> None:
    assert message(HoldSpec.frac(value)) == FRAC_NOT_POSITIVE.format(shown)


def test_loop_zero_is_refused_but_fixed_zero_and_tiny_values_are_valid() -> None:
    assert message(HoldSpec.loop_at(0)) == LOOP_ZERO
    assert message(HoldSpec.loop_at(timedelta(0))) == LOOP_ZERO
    HoldSpec.fixed(0).validate()  # settle / op-only steps
    HoldSpec.loop_at(1e-6).validate()
    HoldSpec.frac(1e-9).validate()
    assert HoldSpec.loop_at(0.5).is_loop


@pytest.mark.parametrize("build", [HoldSpec.fixed, HoldSpec.loop_at])
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, "1", True])
def test_durations_a_rust_duration_cannot_hold_are_refused_at_construction(
        build: object, value: object) -> None:
    with pytest.raises(ConfigError, match="is not a duration: it must be a finite number"):
        build(value)  # type: ignore[operator]


def test_frac_needs_a_number() -> None:
    with pytest.raises(ConfigError, match="needs a number"):
        HoldSpec.frac("half")  # type: ignore[arg-type]


def test_repr_names_the_constructor() -> None:
    assert repr(HoldSpec.FULL) == "HoldSpec.frac(1.0)"
    assert repr(HoldSpec.fixed(2)) == "HoldSpec.fixed(2.0)"
    assert repr(HoldSpec.loop_at(0.5)) == "HoldSpec.loop_at(0.5)"
    assert HoldSpec.fixed(1.0) != HoldSpec.loop_at(1.0)
