"""`HoldSpec`: how long a step holds after its ops, or how often it loops them.

Three shapes: `frac(f)` holds `f * ctx.duration` seconds, `fixed(s)` holds `s`
seconds, `loop_at(i)` re-applies the step's ops every `i` seconds until the
scenario's time (`ctx.duration`, counted from the start of `execute_steps`) is
used up. `HoldSpec.FULL` is `frac(1.0)`: the whole `ctx.duration`.

Construction only refuses what cannot be a duration at all (a negative or
non-finite number of seconds); the values that can be built but make no sense
(a vacuous or infinite fraction, a loop that would busy-spin) are refused by
`validate()`. Its messages keep the wording of the Rust ktstr's, which spells
a hold `HoldSpec::Frac(0.5)`, so a user of both reads the same error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

from ktstr.errors import ConfigError
from ktstr.validators import is_number
from ktstr.validators import seconds as valid_seconds  # `fixed` has a parameter `seconds`

HoldKind = Literal["frac", "fixed", "loop"]


def _rust_f64(f: float) -> str:
    """`f` as Rust's `Display` for f64 writes it (`NaN`, `inf`, `0`, `0.5`), so the
    messages read as the Rust ktstr's do."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if f == int(f) and abs(f) < 1e16:
        return ("-" if math.copysign(1.0, f) < 0 else "") + str(abs(int(f)))
    return repr(f)


@dataclass(frozen=True, slots=True)
class HoldSpec:
    """A hold: `kind` says the shape, `value` is the fraction (`frac`) or seconds.

    Use the constructors; `FULL` == `frac(1.0)`.
    """

    kind: HoldKind
    value: float

    FULL: ClassVar[HoldSpec]

    @classmethod
    def frac(cls, f: float) -> HoldSpec:
        """Hold `f * ctx.duration` seconds; `f` must be finite and > 0 (see `validate`)."""
        if not is_number(f):
            raise ConfigError(f"HoldSpec.frac({f!r}) needs a number; hint: e.g. "
                              "HoldSpec.frac(0.5) for half the scenario duration")
        return cls("frac", float(f))

    @classmethod
    def fixed(cls, seconds: float | timedelta) -> HoldSpec:
        """Hold `seconds` of wall-clock time (0 is valid: apply ops, hold nothing)."""
        return cls("fixed", valid_seconds(seconds, "HoldSpec.fixed seconds", allow_zero=True))

    @classmethod
    def loop_at(cls, interval: float | timedelta) -> HoldSpec:
        """Re-apply the step's ops every `interval` seconds until the scenario's time
        is used up; must be non-zero (see `validate`)."""
        return cls("loop", valid_seconds(interval, "HoldSpec.loop_at interval", allow_zero=True))

    @property
    def is_loop(self) -> bool:
        return self.kind == "loop"

    def validate(self) -> None:
        """Refuse holds that are vacuous or would misbehave downstream: `frac` not
        finite, `frac <= 0`, `loop_at(0)`. `fixed(0)` is valid (a step that holds no time)."""
        if self.kind == "frac":
            f = _rust_f64(self.value)
            if not math.isfinite(self.value):
                raise ConfigError(f"HoldSpec::Frac({f}) is not finite (NaN/Inf) — would "
                                  "panic in Duration::from_secs_f64")
            if self.value <= 0.0:
                raise ConfigError(f"HoldSpec::Frac({f}) must be > 0.0; negative values "
                                  "panic in Duration::from_secs_f64 and zero is vacuous")
        elif self.kind == "loop" and self.value == 0.0:
            raise ConfigError("HoldSpec::Loop { interval: Duration::ZERO } would busy-spin "
                              "the deadline check without yielding; use a non-zero interval")

    def seconds(self, duration: float) -> float:
        """The hold in seconds for a scenario of `duration` seconds (`frac`, `fixed`);
        a loop's interval for `loop`."""
        return self.value * duration if self.kind == "frac" else self.value

    def __repr__(self) -> str:
        name = {"frac": "frac", "fixed": "fixed", "loop": "loop_at"}[self.kind]
        return f"HoldSpec.{name}({self.value!r})"


HoldSpec.FULL = HoldSpec("frac", 1.0)
