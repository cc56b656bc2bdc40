"""The default parameters of every work type, by type name.

Read from the types themselves, so they cannot drift from the constructors:
`defaults.of("Bursty") == {"burst": 0.05, "sleep": 0.1}`, and each value is
also an attribute named TYPE_PARAM in upper snake case
(`defaults.FUTEX_FAN_OUT_FAN_OUT == 4`). Values are computed on first use:
building a default instance of a grouped type opens its shared memory, which
an import should not do.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from functools import cache

from ktstr.errors import ConfigError
from ktstr.work.base import WorkType

_PLAIN = (int, float, str, bool, enum.Enum)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


@cache
def of(name: str) -> dict[str, object]:
    """The parameters `WorkType.from_name(name)` gets, by parameter name."""
    import ktstr.work  # noqa: F401  (registers every type)

    work = WorkType.from_name(name)
    if not dataclasses.is_dataclass(work):
        return {}
    return {f.name: getattr(work, f.name) for f in dataclasses.fields(work)
            if not f.name.startswith("_") and isinstance(getattr(work, f.name), _PLAIN)}


@cache
def _table() -> dict[str, object]:
    import ktstr.work  # noqa: F401

    table: dict[str, object] = {}
    for name in WorkType.ALL_NAMES:
        try:
            params = of(name)
        except ConfigError:  # Sequence, Custom: no defaults, they need explicit parts
            continue
        for param, value in params.items():
            table[f"{_snake(name)}_{param.upper()}"] = value
    return table


def __getattr__(attr: str) -> object:
    try:
        return _table()[attr]
    except KeyError:
        raise AttributeError(f"ktstr.work.defaults has no {attr}; names are TYPE_PARAM, "
                             f"e.g. FUTEX_FAN_OUT_FAN_OUT") from None


def __dir__() -> list[str]:
    return sorted([*_table(), "of"])
