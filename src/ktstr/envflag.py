"""On/off switches read from the environment (KTSTR_COLD, KTSTR_MONITOR, KTSTR_KASLR).

One reading for all of them, so that `=0`, `=off` and `=no` mean the same everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

OFF = frozenset({"0", "off", "no", "false"})


def env_flag(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    """`name` unset or empty: `default`; one of OFF (any case): False; anything else: True."""
    value = (os.environ if env is None else env).get(name, "").strip().lower()
    if not value:
        return default
    return value not in OFF
