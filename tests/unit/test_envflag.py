"""The environment's on/off switches read one way (pure)."""

from __future__ import annotations

import pytest

from ktstr.envflag import env_flag


@pytest.mark.parametrize(("value", "default", "want"), [
    (None, True, True), (None, False, False), ("", True, True), ("  ", False, False),
    ("1", False, True), ("on", False, True), ("yes", False, True),
    ("0", True, False), ("off", True, False), ("OFF", True, False), ("no", True, False),
    ("false", True, False)])
def test_env_flag(value, default, want):
    env = {} if value is None else {"KTSTR_X": value}
    assert env_flag("KTSTR_X", default, env) is want
