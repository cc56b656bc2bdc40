"""Work-type definitions: naming, lookup by name, defaults and validation."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from ktstr import work
from ktstr.errors import ConfigError
from ktstr.work import WorkType


def _noop(wctx: work.WorkerCtx) -> object:
    raise AssertionError("not called")


def test_name_is_the_pascal_case_class_name() -> None:
    assert work.SpinWait().name == "SpinWait"
    assert work.YieldHeavy().name == "YieldHeavy"
    assert work.Mixed().name == "Mixed"
    assert work.Bursty().name == "Bursty"
    assert work.Sequence(work.Spin(0.1)).name == "Sequence"


def test_custom_name_is_the_users_name() -> None:
    assert work.Custom("lock_hammer", _noop).name == "lock_hammer"  # type: ignore[arg-type]


def test_all_names_lists_every_implemented_type_once() -> None:
    names = WorkType.ALL_NAMES
    for n in ("SpinWait", "YieldHeavy", "Mixed", "Bursty", "Sequence", "Custom"):
        assert names.count(n) == 1


def test_from_name_builds_default_instance() -> None:
    assert WorkType.from_name("SpinWait") == work.SpinWait()
    bursty = WorkType.from_name("Bursty")
    assert bursty == work.Bursty(0.05, 0.1)
    assert isinstance(bursty, work.Bursty)


def test_from_name_unknown_raises_with_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown work type 'spinwait'.*did you mean 'SpinWait'"):
        WorkType.from_name("spinwait")


@pytest.mark.parametrize("name", ["Sequence", "Custom"])
def test_from_name_refuses_types_needing_parameters(name: str) -> None:
    with pytest.raises(ConfigError, match="needs explicit parameters"):
        WorkType.from_name(name)


def test_ungrouped_types_have_no_group_size() -> None:
    assert work.SpinWait().group_size is None
    assert work.Bursty().group_size is None


def test_work_types_are_frozen() -> None:
    b = work.Bursty()
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.burst = 1.0  # type: ignore[misc]


def test_bursty_takes_timedelta_and_stores_seconds() -> None:
    b = work.Bursty(burst=timedelta(milliseconds=20), sleep=timedelta(milliseconds=30))
    assert (b.burst, b.sleep) == (0.02, 0.03)


@pytest.mark.parametrize(("kwargs", "shown"), [
    ({"burst": 0}, "Bursty burst = 0"),
    ({"sleep": -0.5}, "Bursty sleep = -0.5"),
    ({"burst": float("nan")}, "Bursty burst = nan"),
    ({"burst": "50ms"}, "Bursty burst = '50ms' is not a duration"),
    ({"sleep": True}, "Bursty sleep = True is not a duration"),
])
def test_bursty_rejects_bad_durations_naming_the_value(kwargs: dict[str, object],
                                                       shown: str) -> None:
    with pytest.raises(ConfigError, match="hint:") as info:
        work.Bursty(**kwargs)  # type: ignore[arg-type]
    assert shown in str(info.value)


@pytest.mark.parametrize("phase", [work.Spin, work.Sleep, work.Yield])
@pytest.mark.parametrize("bad", [0, 0.0, -1])
def test_phase_rejects_non_positive_duration(phase: type[work.Phase], bad: float) -> None:
    with pytest.raises(ConfigError, match=f"{phase.__name__} phase = {bad!r}"):
        phase(bad)


def test_sequence_keeps_phase_order() -> None:
    seq = work.Sequence(work.Spin(0.1), work.Sleep(0.05), work.Yield(0.02))
    assert seq.phases == (work.Spin(0.1), work.Sleep(0.05), work.Yield(0.02))
    assert seq.first == work.Spin(0.1)


def test_sequence_accepts_the_seeds_list_form() -> None:
    assert work.Sequence(work.Spin(0.1), [work.Yield(0.02)]) == \
        work.Sequence(work.Spin(0.1), work.Yield(0.02))


def test_sequence_rejects_a_non_phase_naming_its_position() -> None:
    with pytest.raises(ConfigError, match=r"Sequence phase 2 = 0\.1 is not a phase"):
        work.Sequence(work.Spin(0.1), 0.1)  # type: ignore[arg-type]


def test_custom_rejects_uncallable_fn() -> None:
    with pytest.raises(ConfigError, match="fn = 42 is not callable"):
        work.Custom("x", 42)  # type: ignore[arg-type]


def test_custom_rejects_empty_name() -> None:
    with pytest.raises(ConfigError, match="Custom work name '' is empty"):
        work.Custom("", _noop)  # type: ignore[arg-type]


def test_custom_keeps_cfg_and_is_hashable_with_unhashable_cfg() -> None:
    c = work.Custom("x", _noop, cfg={"depth": 3})  # type: ignore[arg-type]
    assert c.cfg == {"depth": 3}
    hash(c)


def test_a_new_work_type_is_one_small_class() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class TestOnlySpinTwice(WorkType):
        def run(self, loop: work.WorkLoop) -> None:
            while loop.running:
                loop.spin()
                loop.spin()
                loop.iterations += 1

    try:
        assert "TestOnlySpinTwice" in WorkType.ALL_NAMES
        assert WorkType.from_name("TestOnlySpinTwice") == TestOnlySpinTwice()
        assert TestOnlySpinTwice().name == "TestOnlySpinTwice"
    finally:  # keep the catalogue as shipped for the other tests
        WorkType._registry.pop("TestOnlySpinTwice", None)
        WorkType.ALL_NAMES = tuple(n for n in WorkType.ALL_NAMES if n != "TestOnlySpinTwice")
