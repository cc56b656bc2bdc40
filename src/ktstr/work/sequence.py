"""`Sequence(first, *rest)`: ordered phases looped for the whole run.

Each phase runs for its duration in seconds, then the next; after the last the
loop restarts from `first`, until the worker is stopped. One iteration is one
complete pass. Phases:

- `Spin(s)`: spin batches (each one work unit) for `s` seconds.
- `Sleep(s)`: a stop-aware sleep; not a scheduling gap (see `WorkLoop`).
- `Yield(s)`: `sched_yield` repeatedly for `s` seconds, one work unit per yield.
- `Io(s)`: O_DIRECT | O_SYNC 4 KiB `pwrite` + `fdatasync` to the worker's region of
  the scratch disk, else a temp file (IoSyncWrite's step, see `ktstr.work.io`) for
  `s` seconds, one work unit per write.
- `AluHotPhase(s, width)`: AluHot's independent multiply chains (see
  `ktstr.work.compute`) for `s` seconds. The phase is called `AluHot` in a
  sequence, a name the work type `AluHot` already holds in `ktstr.work`; every phase
  is also an attribute of `Phase`, so `Phase.AluHot(0.1)` spells it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from ktstr.errors import ConfigError
from ktstr.validators import seconds
from ktstr.work.base import WorkType
from ktstr.work.compute import ALU_HOT_BATCH, ALU_HOT_WIDTH, AluWidth, chain_seed, multiply_chains
from ktstr.work.io import IO_BLOCK_BYTES, aligned_block, sync_write_target
from ktstr.work.loop import WorkLoop


class Phase:
    """One phase of a `Sequence`; subclasses are frozen dataclasses with `seconds`."""

    __slots__ = ()
    seconds: float

    def __init__(self, secs: float | timedelta) -> None:
        object.__setattr__(self, "seconds", seconds(secs, f"{type(self).__name__} phase"))

    def run(self, loop: WorkLoop) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True, init=False)
class Spin(Phase):
    """Burn CPU for `seconds`."""

    seconds: float

    def run(self, loop: WorkLoop) -> None:
        loop.spin_for(self.seconds)


@dataclass(frozen=True, slots=True, init=False)
class Sleep(Phase):
    """Sleep for `seconds` (cut short when the worker is stopped)."""

    seconds: float

    def run(self, loop: WorkLoop) -> None:
        loop.sleep_for(self.seconds)


@dataclass(frozen=True, slots=True, init=False)
class Yield(Phase):
    """Yield the CPU repeatedly for `seconds`."""

    seconds: float

    def run(self, loop: WorkLoop) -> None:
        loop.yield_for(self.seconds)


@dataclass(frozen=True, slots=True, init=False)
class Io(Phase):
    """Synchronous 4 KiB writes (pwrite + fdatasync) for `seconds`."""

    seconds: float

    def run(self, loop: WorkLoop) -> None:
        target = sync_write_target(loop, "Io phase")
        buf = aligned_block(os.urandom(IO_BLOCK_BYTES))
        bufs = [buf]
        stripe = 0
        end = loop.spin() + int(self.seconds * 1e9)
        try:
            while loop.running:
                os.pwritev(target.fd, bufs, target.base + stripe * IO_BLOCK_BYTES)
                os.fdatasync(target.fd)
                stripe = (stripe + 1) % target.blocks
                if loop.spin() >= end:
                    break
        finally:
            target.close()
            buf.close()


@dataclass(frozen=True, slots=True, init=False)
class AluHotPhase(Phase):
    """AluHot's multiply chains for `seconds` (`Phase.AluHot` in a sequence)."""

    seconds: float
    width: AluWidth

    def __init__(self, secs: float | timedelta, width: AluWidth | str = ALU_HOT_WIDTH) -> None:
        Phase.__init__(self, secs)
        object.__setattr__(self, "width", AluWidth.parse(width))

    def run(self, loop: WorkLoop) -> None:
        chains = self.width.chains
        kernel = multiply_chains(chains)
        state = chain_seed(chains, os.getpid())
        end = loop.spin() + int(self.seconds * 1e9)
        while loop.running:
            state = kernel(ALU_HOT_BATCH, state)
            if loop.spin() >= end:
                break


@dataclass(frozen=True, slots=True, init=False)
class Sequence(WorkType):
    """Phases run in order and looped: `Sequence(Spin(0.1), Yield(0.02))`."""

    by_name: ClassVar[bool] = False
    first: Phase
    rest: tuple[Phase, ...]

    def __init__(self, first: Phase, *rest: Phase | Iterable[Phase]) -> None:
        flat: list[object] = []
        for item in rest:  # the list form `Sequence(first, [p2, p3])` is accepted too
            if isinstance(item, list | tuple):
                flat.extend(item)
            else:
                flat.append(item)
        for pos, phase in enumerate([first, *flat], start=1):
            if not isinstance(phase, Phase):
                raise ConfigError(
                    f"Sequence phase {pos} = {phase!r} is not a phase; "
                    "hint: use work.Spin(s), work.Sleep(s), work.Yield(s), work.Io(s) "
                    "or work.AluHotPhase(s)")
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "rest", tuple(flat))

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (self.first, *self.rest)

    def run(self, loop: WorkLoop) -> None:
        phases = self.phases
        while loop.running:
            for phase in phases:
                if not loop.running:
                    return
                phase.run(loop)
            loop.iterations += 1


# The phase names, all in one place: `Phase.AluHot(0.1)` is `AluHotPhase(0.1)`.
Phase.Spin = Spin  # type: ignore[attr-defined]
Phase.Sleep = Sleep  # type: ignore[attr-defined]
Phase.Yield = Yield  # type: ignore[attr-defined]
Phase.Io = Io  # type: ignore[attr-defined]
Phase.AluHot = AluHotPhase  # type: ignore[attr-defined]
