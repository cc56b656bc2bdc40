"""`GroupArena`: how the workers of a grouped work type find each other.

A work type's `run(loop)` sees only its `WorkLoop`, not its index or its
siblings, so a grouped type (`FutexPingPong`, `PipeIo`: pairs; `FutexFanOut`,
`ThunderingHerd`, `WakeChain`, `MutexContention`...: groups of N) brings its
own meeting place: `MAP_SHARED` memory on a memfd, created when the work type
is constructed, i.e. in the parent before any worker is forked, and inherited
by every worker. Each worker *claims* a role at the start of its run:

- under a POSIX record lock on the memfd (`lockf`: per process, so forked
  siblings sharing the fd still exclude each other) and a thread lock (for
  thread-mode workers, threads of one leader), it joins the first slot
  with the same *key* that still has a free role, taking the lowest free role,
  or opens a free slot as role 0; a group of `size` therefore fills roles
  0..size-1 in arrival order;
- the key is the worker's parent pid and cgroup, so when one instance is used by
  several cgroups, or by several spawning parents, groups form inside each
  of them rather than across;
- `release` gives the role back at the end of the run; a slot with no members
  is free again.

Each slot holds the group's shared memory, zeroed when the slot is taken anew:
`words` int32 futex words (`word(seat, i)`: what they mean is the work type's
business), `stamps` int64 time stamps (`stamp`/`set_stamp`: a waker's
`CLOCK_MONOTONIC` ns just before it woke someone) and a generation count
(unique names for per-group resources). All are plain loads and stores; a
type that needs an atomic read-modify-write across processes asks the kernel
(`FUTEX_WAKE_OP`, see `ktstr.work.fanout.futex_add_wake`).

A worker SIGKILLed mid-run leaves its role in a slot claimed; with `slots`
slots per instance that only matters after many killed runs.

`PairArena` is the `size=2` arena with one word (`turn_word`: whose turn it
is) and one stamp, as `FutexPingPong` and `PipeIo` use it. Typical use by a
group type::

    arena = GroupArena(size=4, words=2, stamps=1)   # in __init__ (the parent)
    with arena.seat(group_key()) as seat:           # in run(), each worker
        gen = arena.word(seat, 0)                   # ctypes.c_int32 in shared memory
        ...

`seat()` is `claim` + `release` in a `try/finally`: the role goes back however
the run ends, including an error between the claim and the work loop.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ktstr.errors import ConfigError, SystemError_
from ktstr.system.proc import task_cgroup
from ktstr.validators import is_int

#: Slot size granularity: slots start on cache-line boundaries.
SLOT_BYTES = 64
#: Groups one `PairArena` can host at the same time (one page of pair slots).
SLOTS = mmap.PAGESIZE // SLOT_BYTES - 1
#: Most roles a group may have (the members bitmask is 64 bits).
MAX_GROUP_SIZE = 64

# Slot header (offsets inside a slot); stamps then words follow it.
_MEMBERS = 0  # uint64 bitmask: bit r set = role r present
_KEY = 8  # uint64, 0 = free
_GEN = 16  # uint32, bumped each time the slot is taken anew
_HEADER = 24
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_I64 = struct.Struct("=q")


def pair_key() -> int:
    """The calling worker's grouping key: its parent pid and cgroup (never 0)."""
    cgroup = task_cgroup("self").encode("utf-8", "surrogateescape")
    return ((os.getppid() << 32) | zlib.crc32(cgroup)) | 1 << 63


#: The same key under its general name.
group_key = pair_key


@dataclass(frozen=True, slots=True)
class Seat:
    """One worker's claim: its slot, its role (0..size-1), the slot's generation
    and the group size."""

    slot: int
    role: int
    generation: int
    size: int = 2

    @property
    def partner(self) -> int:
        """The next role round the group (the other one in a pair)."""
        return (self.role + 1) % self.size


class GroupArena:
    """Shared slots for groups of `size` roles plus the lock that guards claiming them.

    `words` int32 futex words and `stamps` int64 stamps per slot; `slots` groups
    at the same time.
    """

    __slots__ = ("_owner", "_slot_bytes", "_stamps", "_tlock", "_words", "fd", "mm", "size",
                 "slots")

    def __init__(self, size: int, *, words: int = 1, stamps: int = 1,
                 slots: int = SLOTS) -> None:
        if not is_int(size) or not 2 <= size <= MAX_GROUP_SIZE:
            raise ConfigError(
                f"group size {size!r} is out of range; hint: a group has 2 to "
                f"{MAX_GROUP_SIZE} workers")
        for what, n in (("words", words), ("stamps", stamps), ("slots", slots)):
            if not is_int(n) or n < (1 if what == "slots" else 0):
                raise ConfigError(f"GroupArena {what} = {n!r} is invalid; hint: pass a "
                                  "non-negative integer (slots at least 1)")
        self.size = size
        self.slots = slots
        self._stamps = stamps
        self._words = words
        raw = _HEADER + 8 * stamps + 4 * words
        self._slot_bytes = -(-raw // SLOT_BYTES) * SLOT_BYTES
        length = -(-(slots + 1) * self._slot_bytes // mmap.PAGESIZE) * mmap.PAGESIZE
        self._owner = os.getpid()
        # Record locks exclude processes only; thread-mode workers (threads of one
        # leader) also take this lock, which each forked process holds its own copy of.
        self._tlock = threading.Lock()
        self.fd = os.memfd_create("ktstr-groups", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, length)
        self.mm = mmap.mmap(self.fd, length, flags=mmap.MAP_SHARED)

    def __del__(self) -> None:
        # Only in the process that made it; workers leave through os._exit anyway.
        if getattr(self, "_owner", None) == os.getpid():
            self.mm.close()
            os.close(self.fd)

    # -- claiming ------------------------------------------------------------------

    def claim(self, key: int, on_seat: Callable[[Seat], None] | None = None) -> Seat:
        """Take the lowest free role of a slot keyed `key`, or open a slot as role 0.

        `on_seat(seat)` runs under the lock once the seat is taken, so role 0
        can create per-group resources before anyone joins, and later roles can
        open them before the others could leave and remove them.
        """
        full = (1 << self.size) - 1
        with self._tlock:
            return self._claim_locked(key, full, on_seat)

    def _claim_locked(self, key: int, full: int,
                      on_seat: Callable[[Seat], None] | None) -> Seat:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            free = -1
            for slot in range(self.slots):
                members = self._get(_U64, slot, _MEMBERS)
                if members and members != full and self._get(_U64, slot, _KEY) == key:
                    role = (~members & full & -(~members & full)).bit_length() - 1
                    self._put(_U64, slot, _MEMBERS, members | 1 << role)
                    return self._seated(Seat(slot, role, self._get(_U32, slot, _GEN),
                                             self.size), on_seat)
                if members == 0 and free < 0:
                    free = slot
            if free < 0:
                kind = "pair" if self.size == 2 else "group"
                raise SystemError_(
                    f"all {self.slots} {kind} slots of this work type are taken; hint: use "
                    "one work type instance per cgroup, or fewer grouped workers")
            gen = (self._get(_U32, free, _GEN) + 1) & 0xFFFFFFFF
            base = self._off(free, 0)
            self.mm[base:base + self._slot_bytes] = bytes(self._slot_bytes)
            self._put(_U32, free, _GEN, gen)
            self._put(_U64, free, _KEY, key)
            self._put(_U64, free, _MEMBERS, 1)
            return self._seated(Seat(free, 0, gen, self.size), on_seat)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    @staticmethod
    def _seated(seat: Seat, on_seat: Callable[[Seat], None] | None) -> Seat:
        if on_seat is not None:
            on_seat(seat)
        return seat

    def release(self, seat: Seat, on_leave: Callable[[Seat], None] | None = None) -> None:
        """Give `seat` back (calling `on_leave(seat)` under the lock); the slot is
        free once every role has left."""
        with self._tlock:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            try:
                if on_leave is not None:
                    on_leave(seat)
                left = self._get(_U64, seat.slot, _MEMBERS) & ~(1 << seat.role)
                self._put(_U64, seat.slot, _MEMBERS, left)
                if left == 0:
                    self._put(_U64, seat.slot, _KEY, 0)
            finally:
                fcntl.lockf(self.fd, fcntl.LOCK_UN)

    @contextmanager
    def seat(self, key: int, *, on_seat: Callable[[Seat], None] | None = None,
             on_leave: Callable[[Seat], None] | None = None) -> Iterator[Seat]:
        """Hold a role for the `with` block: `claim(key, on_seat)` on entry,
        `release(seat, on_leave)` on exit, whatever the block raised."""
        taken = self.claim(key, on_seat)
        try:
            yield taken
        finally:
            self.release(taken, on_leave)

    def present(self, seat: Seat) -> int:
        """How many roles of `seat`'s group are claimed right now."""
        return self._get(_U64, seat.slot, _MEMBERS).bit_count()

    # -- the group's shared words --------------------------------------------------

    def word(self, seat: Seat, index: int = 0) -> ctypes.c_int32:
        """Word `index` of the slot as a ctypes int32 living in shared memory
        (`ctypes.addressof` of it is a futex address)."""
        if not 0 <= index < self._words:
            raise IndexError(f"word {index} of a {self._words}-word slot")
        return ctypes.c_int32.from_buffer(
            self.mm, self._off(seat.slot, _HEADER + 8 * self._stamps + 4 * index))

    def stamp_cell(self, seat: Seat, index: int = 0) -> ctypes.c_int64:
        """Stamp `index` as a ctypes int64 in shared memory (for hot loops)."""
        return ctypes.c_int64.from_buffer(self.mm, self._stamp_off(seat, index))

    def stamp(self, seat: Seat, index: int = 0) -> int:
        value: int = _I64.unpack_from(self.mm, self._stamp_off(seat, index))[0]
        return value

    def set_stamp(self, seat: Seat, ns: int, index: int = 0) -> None:
        _I64.pack_into(self.mm, self._stamp_off(seat, index), ns)

    def _stamp_off(self, seat: Seat, index: int) -> int:
        if not 0 <= index < self._stamps:
            raise IndexError(f"stamp {index} of a {self._stamps}-stamp slot")
        return self._off(seat.slot, _HEADER + 8 * index)

    def _off(self, slot: int, field: int) -> int:
        return (slot + 1) * self._slot_bytes + field

    def _get(self, fmt: struct.Struct, slot: int, field: int) -> int:
        value: int = fmt.unpack_from(self.mm, self._off(slot, field))[0]
        return value

    def _put(self, fmt: struct.Struct, slot: int, field: int, value: int) -> None:
        fmt.pack_into(self.mm, self._off(slot, field), value)


class PairArena(GroupArena):
    """A `GroupArena` of pairs: one turn word (0 or 1: whose turn) and one stamp."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(2, words=1, stamps=1)

    def turn_word(self, seat: Seat) -> ctypes.c_int32:
        """The slot's futex word as a ctypes int32 living in the shared page."""
        return self.word(seat, 0)
