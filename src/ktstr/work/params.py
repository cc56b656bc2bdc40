"""Validation of work-type integer parameters (counts, sizes, iteration numbers).

`count(value, what, minimum)` returns `value` when it is an int (not a bool)
of at least `minimum`, or raises `ConfigError` naming `what` and the value.
Durations are validated by `ktstr.work.base.seconds`.
"""

from __future__ import annotations

from ktstr.errors import ConfigError


def count(value: object, what: str, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`, or ConfigError naming `what`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(
            f"{what} = {value!r} is not {kind}; "
            f"hint: pass an integer of at least {minimum}")
    return value
