"""High-IPC compute and SMT work types: high-IPC compute, SMT sibling interference.

- `AluHot(width)`: independent 64-bit multiply-add chains run side by side.
  Python cannot emit SIMD, so `width` (an `AluWidth`) is the number of
  *independent* chains interleaved in one loop body: `SCALAR` 1, `VEC128` 2,
  `VEC256` 4, `VEC512` and `WIDEST` 8 (the 64-bit lanes of that vector width).
  More chains give the core's out-of-order engine more independent multiplies
  per interpreted instruction; the interpreter still dominates, so the
  schedulable effect is "a task that never leaves the ALU", not a vector licence.
  One batch of `ALU_HOT_BATCH` steps per chain is one work unit.
- `SmtSiblingSpin`: workers pair up (`group_size` 2) and each pair pins itself
  to the two hardware threads of one core (`sched_setaffinity`), then both
  spin: each marks the pair's shared word and spin-waits (at most
  `SMT_SPIN_POLLS` loads) for the sibling's mark, between arithmetic batches:
  a spin-wait's access pattern, standing in for PAUSE, which Python cannot issue.
  Metrics: `smt_cpu` (the CPU pinned to), `smt_handoffs` (sibling marks seen).
  Two such spinners compete for one core's execution ports. Without a core
  whose two threads are both allowed, the worker notes it and spins unpinned.
- `IpcVariance(hot_iters, cold_iters, period_iters)`: a hot phase of
  `hot_iters` multiply-chain steps, then a cold phase of `cold_iters` random
  cache-line reads over a `IPC_VARIANCE_WORKING_SET_KIB` KiB buffer (driven in C:
  `map(buf.__getitem__, offsets)` drained by a zero-length deque, so the misses,
  not the interpreter, dominate it, and nothing is allocated per read). One
  hot+cold pair is one work unit; `period_iters` pairs one iteration.
  Defaults: 100 000, 1024, 64.
"""

from __future__ import annotations

import collections
import enum
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ktstr.errors import ConfigError
from ktstr.system.cpu import thread_siblings
from ktstr.validators import count
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop
from ktstr.work.pairing import PairArena, pair_key

#: Multiply-add steps per chain in one `AluHot` work unit.
ALU_HOT_BATCH = 256
#: Loads of the pair's shared word per `SmtSiblingSpin` work unit.
SMT_SPIN_POLLS = 256
IPC_VARIANCE_HOT_ITERS = 100_000
IPC_VARIANCE_COLD_ITERS = 1024
IPC_VARIANCE_PERIOD_ITERS = 64
#: The cold phase's working set (512 KiB: past L1/L2 on most cores).
IPC_VARIANCE_WORKING_SET_KIB = 512
CACHE_LINE_BYTES = 64

_MASK = (1 << 64) - 1
_MUL = 6364136223846793005  # Knuth's MMIX LCG multiplier
_ADD = 1442695040888963407


class AluWidth(enum.Enum):
    """How many independent multiply chains `AluHot` interleaves (its "lanes")."""

    SCALAR = "scalar"
    VEC128 = "vec128"
    VEC256 = "vec256"
    VEC512 = "vec512"
    WIDEST = "widest"

    @property
    def chains(self) -> int:
        """Independent 64-bit chains: the vector width's 64-bit lanes."""
        return _CHAINS[self]

    @classmethod
    def parse(cls, value: object) -> AluWidth:
        """An `AluWidth`, or its name ("vec256", case-insensitive), or ConfigError."""
        if isinstance(value, AluWidth):
            return value
        if isinstance(value, str):
            for member in cls:
                if member.value == value.lower():
                    return member
        raise ConfigError(
            f"AluHot width = {value!r} is not an AluWidth; hint: use one of "
            + ", ".join(f"AluWidth.{m.name}" for m in cls) + " (or its lower-case name)")


_CHAINS = {AluWidth.SCALAR: 1, AluWidth.VEC128: 2, AluWidth.VEC256: 4,
           AluWidth.VEC512: 8, AluWidth.WIDEST: 8}
ALU_HOT_WIDTH = AluWidth.WIDEST


# One kernel per chain count, written out so each step's multiplies are independent
# of each other (no loop over a list of lanes, which would serialise them and allocate).
def _chains1(n: int, s: tuple[int, ...]) -> tuple[int, ...]:
    (a,) = s
    m, c, k = _MUL, _ADD, _MASK
    for _ in range(n):
        a = (a * m + c) & k
    return (a,)


def _chains2(n: int, s: tuple[int, ...]) -> tuple[int, ...]:
    a, b = s
    m, c, k = _MUL, _ADD, _MASK
    for _ in range(n):
        a = (a * m + c) & k
        b = (b * m + c) & k
    return (a, b)


def _chains4(n: int, s: tuple[int, ...]) -> tuple[int, ...]:
    a, b, d, e = s
    m, c, k = _MUL, _ADD, _MASK
    for _ in range(n):
        a = (a * m + c) & k
        b = (b * m + c) & k
        d = (d * m + c) & k
        e = (e * m + c) & k
    return (a, b, d, e)


def _chains8(n: int, s: tuple[int, ...]) -> tuple[int, ...]:
    a, b, d, e, f, g, h, i = s
    m, c, k = _MUL, _ADD, _MASK
    for _ in range(n):
        a = (a * m + c) & k
        b = (b * m + c) & k
        d = (d * m + c) & k
        e = (e * m + c) & k
        f = (f * m + c) & k
        g = (g * m + c) & k
        h = (h * m + c) & k
        i = (i * m + c) & k
    return (a, b, d, e, f, g, h, i)


MultiplyChains = Callable[[int, tuple[int, ...]], tuple[int, ...]]
_KERNELS: dict[int, MultiplyChains] = {1: _chains1, 2: _chains2, 4: _chains4, 8: _chains8}


def multiply_chains(chains: int) -> MultiplyChains:
    """The kernel advancing `chains` independent LCG chains `n` steps: `f(n, state)`."""
    return _KERNELS[chains]


def chain_seed(chains: int, seed: int) -> tuple[int, ...]:
    """Distinct odd starting values for `chains` chains."""
    return tuple(((seed + lane) * 0x9E3779B97F4A7C15 | 1) & _MASK for lane in range(chains))


@dataclass(frozen=True, slots=True, init=False)
class AluHot(WorkType):
    """Independent multiply chains, `width.chains` of them, `ALU_HOT_BATCH` steps per unit."""

    width: AluWidth

    def __init__(self, width: AluWidth | str = ALU_HOT_WIDTH) -> None:
        object.__setattr__(self, "width", AluWidth.parse(width))

    def run(self, loop: WorkLoop) -> None:
        chains = self.width.chains
        kernel = multiply_chains(chains)
        state = chain_seed(chains, os.getpid())
        steps = 0
        try:
            while loop.running:
                state = kernel(ALU_HOT_BATCH, state)
                steps += ALU_HOT_BATCH
                loop.spin()
                loop.iterations += 1
        finally:
            loop.metrics["alu_chains"] = float(chains)
            loop.metrics["alu_multiplies"] = float(steps * chains)


def smt_cores(allowed: frozenset[int],
              siblings: Callable[[int], frozenset[int]] = thread_siblings) -> list[tuple[int, int]]:
    """The cores with at least two allowed hardware threads: (first, second) CPU pairs,
    ordered by the lower CPU. `siblings(cpu)` gives a CPU's core mates (sysfs)."""
    cores: dict[frozenset[int], tuple[int, int]] = {}
    for cpu in sorted(allowed):
        mates = sorted(siblings(cpu) & allowed)
        if len(mates) >= 2:
            cores.setdefault(frozenset(mates), (mates[0], mates[1]))
    return sorted(cores.values())


@dataclass(frozen=True, slots=True, init=False)
class SmtSiblingSpin(WorkType):
    """Pairs pinned to the two threads of one core, both spinning."""

    _arena: PairArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self) -> None:
        object.__setattr__(self, "_arena", PairArena())

    def run(self, loop: WorkLoop) -> None:
        arena = self._arena
        with arena.seat(pair_key()) as seat:
            word = arena.turn_word(seat)
            cores = smt_cores(frozenset(os.sched_getaffinity(0)))
            if cores:
                cpu = cores[seat.slot % len(cores)][seat.role]
                os.sched_setaffinity(0, {cpu})
                loop.resume_after_wait()  # note the CPU we are on now
                loop.metrics["smt_cpu"] = float(cpu)
            else:
                loop.note("no core with two allowed SMT threads: spinning unpinned")
            polls = range(SMT_SPIN_POLLS)
            mine, theirs = seat.role + 1, seat.partner + 1
            handoffs = 0
            while loop.running:
                # The spin-wait: load the shared line until the sibling has marked it
                # since our last mark (a hand-off through the core's shared L1), bounded
                # so a descheduled or stopped partner never stalls us.
                for _ in polls:
                    seen = word.value
                    if seen != mine:
                        handoffs += seen == theirs  # not the slot's initial 0
                        break
                word.value = mine
                loop.spin()
                loop.iterations += 1
            loop.metrics["smt_handoffs"] = float(handoffs)


@dataclass(frozen=True, slots=True, init=False)
class IpcVariance(WorkType):
    """Alternating hot (multiply chain) and cold (random cache-line reads) phases."""

    hot_iters: int
    cold_iters: int
    period_iters: int

    def __init__(self, hot_iters: int = IPC_VARIANCE_HOT_ITERS,
                 cold_iters: int = IPC_VARIANCE_COLD_ITERS,
                 period_iters: int = IPC_VARIANCE_PERIOD_ITERS) -> None:
        object.__setattr__(self, "hot_iters", count(hot_iters, "IpcVariance hot_iters"))
        object.__setattr__(self, "cold_iters", count(cold_iters, "IpcVariance cold_iters"))
        object.__setattr__(self, "period_iters",
                           count(period_iters, "IpcVariance period_iters"))

    def run(self, loop: WorkLoop) -> None:
        size = IPC_VARIANCE_WORKING_SET_KIB * 1024
        # Written, not calloc'd: untouched pages would all read the one shared zero page.
        buf = bytearray(os.urandom(4096) * (size // 4096))
        rng = random.Random(os.getpid())
        lines = size // CACHE_LINE_BYTES
        # A fixed random line order, read in C: `drain(map(load, offsets))` makes no
        # bytecode step and no allocation per read (bytes come back as cached small
        # ints), so the cold phase's time is the loads' misses.
        offsets = [rng.randrange(lines) * CACHE_LINE_BYTES for _ in range(self.cold_iters)]
        load = buf.__getitem__
        drain = collections.deque[int](maxlen=0).extend
        state = chain_seed(1, os.getpid())
        hot = multiply_chains(1)
        period = self.period_iters
        pairs = 0
        try:
            while loop.running:  # stop is seen after every pair, not every period
                state = hot(self.hot_iters, state)
                drain(map(load, offsets))
                pairs += 1
                loop.spin()
                if pairs % period == 0:
                    loop.iterations += 1
        finally:
            loop.metrics["ipc_phase_pairs"] = float(pairs)
