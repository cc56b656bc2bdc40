"""`KTSTR_MONITOR` / `ktstr test --no-monitor`: which values turn the monitor off."""

from __future__ import annotations

import pytest

from ktstr.runner.monitoring import ENV_MONITOR, monitor_disabled


@pytest.mark.parametrize(("value", "off"), [(None, False), ("on", False), ("1", False),
                                            ("off", True), ("OFF", True), ("0", True)])
def test_monitor_switch(value, off):
    env = {} if value is None else {ENV_MONITOR: value}
    assert monitor_disabled(env) is off
