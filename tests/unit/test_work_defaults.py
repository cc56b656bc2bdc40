import pytest

from ktstr.work import WorkType, defaults


def test_defaults_are_what_from_name_builds():
    assert defaults.of("Bursty") == {"burst": 0.05, "sleep": 0.1}
    assert defaults.BURSTY_BURST == 0.05
    assert WorkType.from_name("FutexFanOut").fan_out == defaults.FUTEX_FAN_OUT_FAN_OUT


def test_every_parameterised_type_has_its_constants():
    names = dir(defaults)
    for expected in ("TIMER_LATENCY_INTERVAL_US", "MUTEX_CONTENTION_CONTENDERS",
                     "THUNDERING_HERD_WAITERS", "CGROUP_CHURN_GROUPS", "ALU_HOT_WIDTH"):
        assert expected in names


def test_an_unknown_constant_names_the_scheme():
    with pytest.raises(AttributeError, match="TYPE_PARAM"):
        defaults.NOT_A_THING  # noqa: B018
