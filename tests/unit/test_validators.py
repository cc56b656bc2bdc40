"""ktstr.validators: one rule and one message per kind of value."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from ktstr.errors import ConfigError
from ktstr.validators import count, is_int, is_number, milliseconds, seconds


def test_is_int_and_is_number_refuse_bool() -> None:
    assert is_int(3) and not is_int(True) and not is_int(3.0)
    assert is_number(3) and is_number(0.5) and not is_number(False) and not is_number("1")


def test_seconds_takes_numbers_and_timedeltas() -> None:
    assert seconds(2, "duration_s") == 2.0
    assert seconds(timedelta(milliseconds=50), "duration_s") == 0.05
    assert seconds(0, "settle", allow_zero=True) == 0.0


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, timedelta(0)])
def test_seconds_refuses_non_positive_and_non_finite(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        seconds(bad, "duration_s")
    assert str(info.value) == (f"duration_s = {bad!r} is not a positive duration; hint: give "
                               "a time greater than zero in seconds, e.g. 0.05 for 50 ms")


@pytest.mark.parametrize("bad", ["2s", None, True])
def test_seconds_refuses_what_is_not_a_duration(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"duration_s = .* is not a duration: it must be a "
                       r"finite number of seconds > 0; hint: pass seconds as a float"):
        seconds(bad, "duration_s")


@pytest.mark.parametrize("bad", [-0.1, math.nan, "1"])
def test_seconds_with_zero_allowed_still_refuses_negative_nan_and_strings(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"is not a duration: it must be a finite number of "
                       r"seconds >= 0"):
        seconds(bad, "settle", allow_zero=True)


def test_count_and_milliseconds_name_the_value() -> None:
    assert count(3, "workers") == 3
    with pytest.raises(ConfigError, match=r"^workers = True is not a positive integer; hint"):
        count(True, "workers")
    with pytest.raises(ConfigError, match=r"^stride = -1 is not an integer >= 0; hint"):
        count(-1, "stride", 0)
    assert milliseconds(10, "period_ms") == 10.0
    with pytest.raises(ConfigError, match="is not a positive number of milliseconds"):
        milliseconds(math.inf, "period_ms")
