"""How a Scheduler names its binary (pure; no VM)."""

from __future__ import annotations

import pytest


def test_a_scheduler_binary_is_a_name_a_path_or_a_spec():
    from ktstr.errors import ConfigError
    from ktstr.scheduler import Scheduler, SchedulerSpec, declare_scheduler

    assert Scheduler("q", binary="scx_qmap").spec == SchedulerSpec.discover("scx_qmap")
    assert Scheduler("q", binary="/opt/scx_q").spec == SchedulerSpec.path("/opt/scx_q")
    assert Scheduler("q").spec == SchedulerSpec.discover("q")
    assert declare_scheduler("q_unit", binary="scx_qmap") == Scheduler("q_unit", "scx_qmap")
    with pytest.raises(ConfigError, match=r"binary=3 is neither a name, a path nor a "):
        Scheduler("q", binary=3)  # type: ignore[arg-type]
