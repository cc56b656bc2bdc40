"""`PairArena`: how the two workers of a paired work type find each other.

A work type's `run(loop)` sees only its `WorkLoop`, not its index or its
siblings, so a paired type (`FutexPingPong`, `PipeIo`) brings its own meeting
place: one page of `MAP_SHARED` memory on a memfd, created when the work type
is constructed, i.e. in the parent before any worker is forked, and inherited
by every worker. Each worker *claims* a role at the start of its run:

- under a POSIX record lock on the memfd (`lockf`: per process, so forked
  siblings sharing the fd still exclude each other), it joins a slot whose
  role 0 is waiting with the same *key*, as role 1, or takes a free slot as
  role 0;
- the key is the worker's parent pid and cgroup, so when one instance is used by
  several cgroups, or by several spawning parents, pairs form inside each
  of them rather than across;
- `release` gives the role back at the end of the run; a slot with no members
  is free again.

Each slot holds the pair's shared words: `turn` (the futex word: whose turn it
is, 0 or 1), `stamp` (the waker's `CLOCK_MONOTONIC` ns just before it woke the
partner) and a generation count (unique names for per-pair resources).
A worker SIGKILLed mid-run leaves its half of a slot claimed; with
`SLOTS` slots per instance that only matters after many killed runs.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from ktstr.errors import SystemError_

#: Bytes per pair slot; the first slot starts one slot in (the header is unused).
SLOT_BYTES = 64
#: Pairs one instance can host at the same time.
SLOTS = mmap.PAGESIZE // SLOT_BYTES - 1

# Slot layout (offsets inside a slot).
_TURN = 0  # int32, the futex word
_MEMBERS = 4  # int32 bitmask: 1 = role 0 present, 2 = role 1 present
_KEY = 8  # uint64, 0 = free
_STAMP = 16  # int64 ns
_GEN = 24  # uint32, bumped each time the slot is taken anew
_I32 = struct.Struct("=i")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_I64 = struct.Struct("=q")


def pair_key() -> int:
    """The calling worker's pairing key: its parent pid and cgroup (never 0)."""
    with open("/proc/self/cgroup", "rb") as f:
        cgroup = f.read()
    return ((os.getppid() << 32) | zlib.crc32(cgroup)) | 1 << 63


@dataclass(frozen=True, slots=True)
class Seat:
    """One worker's claim: its slot, its role (0 or 1) and the slot's generation."""

    slot: int
    role: int
    generation: int

    @property
    def partner(self) -> int:
        return 1 - self.role


class PairArena:
    """One shared page of pair slots plus the lock that guards claiming them."""

    __slots__ = ("_owner", "fd", "mm")

    def __init__(self) -> None:
        self._owner = os.getpid()
        self.fd = os.memfd_create("ktstr-pairs", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, mmap.PAGESIZE)
        self.mm = mmap.mmap(self.fd, mmap.PAGESIZE, flags=mmap.MAP_SHARED)

    def __del__(self) -> None:
        # Only in the process that made it; workers leave through os._exit anyway.
        if getattr(self, "_owner", None) == os.getpid():
            self.mm.close()
            os.close(self.fd)

    # -- claiming ------------------------------------------------------------------

    def claim(self, key: int, on_seat: Callable[[Seat], None] | None = None) -> Seat:
        """Join a waiting role 0 with the same `key` as role 1, or open a slot as role 0.

        `on_seat(seat)` runs under the lock once the seat is taken, so role 0
        can create per-pair resources before any partner joins, and role 1 can
        open them before role 0 could leave and remove them.
        """
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            free = -1
            for slot in range(SLOTS):
                members = self._get(_I32, slot, _MEMBERS)
                if members == 1 and self._get(_U64, slot, _KEY) == key:
                    self._put(_I32, slot, _MEMBERS, 3)
                    seat = Seat(slot, 1, self._get(_U32, slot, _GEN))
                    if on_seat is not None:
                        on_seat(seat)
                    return seat
                if members == 0 and free < 0:
                    free = slot
            if free < 0:
                raise SystemError_(
                    f"all {SLOTS} pair slots of this work type are taken; hint: use one "
                    "work type instance per cgroup, or fewer paired workers")
            gen = (self._get(_U32, free, _GEN) + 1) & 0xFFFFFFFF
            self._put(_U32, free, _GEN, gen)
            self._put(_U64, free, _KEY, key)
            self._put(_I32, free, _TURN, 0)
            self._put(_I64, free, _STAMP, 0)
            self._put(_I32, free, _MEMBERS, 1)
            seat = Seat(free, 0, gen)
            if on_seat is not None:
                on_seat(seat)
            return seat
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def release(self, seat: Seat, on_leave: Callable[[Seat], None] | None = None) -> None:
        """Give `seat` back (calling `on_leave(seat)` under the lock); the slot is
        free once both roles have left."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            if on_leave is not None:
                on_leave(seat)
            left = self._get(_I32, seat.slot, _MEMBERS) & ~(1 << seat.role)
            self._put(_I32, seat.slot, _MEMBERS, left)
            if left == 0:
                self._put(_U64, seat.slot, _KEY, 0)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    # -- the pair's shared words ---------------------------------------------------

    def turn_word(self, seat: Seat) -> ctypes.c_int32:
        """The slot's futex word as a ctypes int32 living in the shared page."""
        return ctypes.c_int32.from_buffer(self.mm, self._off(seat.slot, _TURN))

    def stamp(self, seat: Seat) -> int:
        return self._get(_I64, seat.slot, _STAMP)

    def set_stamp(self, seat: Seat, ns: int) -> None:
        self._put(_I64, seat.slot, _STAMP, ns)

    def _off(self, slot: int, field: int) -> int:
        return (slot + 1) * SLOT_BYTES + field

    def _get(self, fmt: struct.Struct, slot: int, field: int) -> int:
        value: int = fmt.unpack_from(self.mm, self._off(slot, field))[0]
        return value

    def _put(self, fmt: struct.Struct, slot: int, field: int, value: int) -> None:
        fmt.pack_into(self.mm, self._off(slot, field), value)
