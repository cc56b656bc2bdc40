"""Paired wake-placement work types: wake placement and cross-CPU wake paths.

- `FutexPingPong(spin_iters)`: two workers take turns through a futex word in
  shared memory: spin `spin_iters` multiply-add steps plus one work unit, hand
  the turn over (`FUTEX_WAKE`), sleep in `FUTEX_WAIT` until it comes back. The
  futex is not private (`FUTEX_PRIVATE_FLAG` unset: the word is in a
  `MAP_SHARED` page), and a futex wake is the kernel's non-`WF_SYNC` path.
- `PipeIo`: the same turn-taking with a CPU burst then a 1-byte write to the
  partner's pipe (a FIFO); the pipe write wakes the reader with `WF_SYNC`.
- `CachePipe`: `PipeIo`'s hand-over whose burst sweeps a cache-hot working set
  (`CACHE_PIPE_SIZE_KIB`), so where the wakee is placed shows in its burst time.

All pair workers (`group_size` 2): each worker claims a role in the type's
`PairArena` when it starts (see `ktstr.work.pairing`). Each wakeup is measured
from the waker's side: just before it wakes its partner the waker stores
`time.monotonic_ns()` in the pair's slot; the wakee, back from its sleep,
records `now - stamp` as one wake-to-run sample (the report's
`wake_latency_us`). A turn whose hand-over had already happened before the
worker would have slept is not a wakeup and is not sampled.

A worker whose partner has stopped (or never came) waits in slices of
`WAIT_SLICE_S`, so it still sees its own stop request promptly. Time spent
waiting for the partner counts towards the worker's `max_gap_ms`, since the
`WorkLoop` has no public way to restart its gap clock after a blocking wait.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ktstr.errors import SystemError_
from ktstr.system.libc import MACHINE, Timespec, syscall, syscall_nr
from ktstr.validators import count
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop, spin_batch
from ktstr.work.pairing import PairArena, Seat, pair_key

FUTEX_PING_PONG_SPIN_ITERS = 1024
#: Multiply-add steps of a `PipeIo` worker's burst before each hand-over.
PIPE_IO_SPIN_ITERS = 1024
#: Working set of a `CachePipe` worker, KiB: L1d-sized, so a wakeup on another CPU
#: (or after someone else ran here) finds it cold.
CACHE_PIPE_SIZE_KIB = 32
#: Sweeps over the working set per `CachePipe` burst.
CACHE_PIPE_PASSES = 4
#: Longest single sleep of a waiting worker, in seconds, before it re-checks stop.
WAIT_SLICE_S = 0.05

FUTEX_WAIT = 0
FUTEX_WAKE = 1


def futex_nr() -> int:
    """futex(2)'s system call number on this machine; SystemError_ where it is unknown."""
    nr = syscall_nr("futex")
    if nr is None:
        raise SystemError_(
            f"no futex(2) syscall number known for {MACHINE}; hint: add it "
            "to ktstr.system.libc.SYSCALL_NUMBERS")
    return nr


def futex_wait(addr: int, expected: int, timeout_s: float) -> int:
    """`FUTEX_WAIT` on the int32 at `addr` while it holds `expected`.

    Returns 0 when woken (possibly spuriously), else the errno: EAGAIN (the word
    no longer held `expected`), ETIMEDOUT, EINTR.
    """
    ts = Timespec(int(timeout_s), int((timeout_s % 1) * 1e9))
    rc = syscall(ctypes.c_long(futex_nr()), ctypes.c_void_p(addr), ctypes.c_int(FUTEX_WAIT),
                 ctypes.c_int(expected), ctypes.byref(ts), None, ctypes.c_int(0))
    return 0 if rc == 0 else ctypes.get_errno()


def futex_wake(addr: int, waiters: int = 1) -> int:
    """`FUTEX_WAKE` up to `waiters` tasks sleeping on `addr`; how many were woken."""
    rc = syscall(ctypes.c_long(futex_nr()), ctypes.c_void_p(addr), ctypes.c_int(FUTEX_WAKE),
                 ctypes.c_int(waiters), None, None, ctypes.c_int(0))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"futex(FUTEX_WAKE): {os.strerror(err)}")
    return int(rc)


@dataclass(frozen=True, slots=True, init=False)
class FutexPingPong(WorkType):
    """Paired futex wait/wake; `spin_iters` multiply-add steps per turn (>= 0)."""

    spin_iters: int
    _arena: PairArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self, spin_iters: int = FUTEX_PING_PONG_SPIN_ITERS) -> None:
        object.__setattr__(self, "spin_iters",
                           count(spin_iters, "FutexPingPong spin_iters", minimum=0))
        object.__setattr__(self, "_arena", PairArena())

    def run(self, loop: WorkLoop) -> None:
        arena = self._arena
        with arena.seat(pair_key()) as seat:
            self._seated(loop, seat)
            word = arena.turn_word(seat)
            addr = ctypes.addressof(word)
            x = 1
            while self._await_turn(loop, seat, word, addr):
                x = spin_batch(self.spin_iters, x)
                loop.spin()
                loop.iterations += 1
                arena.set_stamp(seat, time.monotonic_ns())
                word.value = seat.partner
                futex_wake(addr)

    def _seated(self, loop: WorkLoop, seat: Seat) -> None:
        """Hook for variants (`AsymmetricWaker`): runs once the worker has its role."""

    def _await_turn(self, loop: WorkLoop, seat: Seat, word: ctypes.c_int32,
                    addr: int) -> bool:
        """Sleep until it is `seat`'s turn (True) or the worker is stopped (False)."""
        while word.value != seat.role:
            if not loop.running:
                return False
            woken = futex_wait(addr, seat.partner, WAIT_SLICE_S) == 0
            if woken and word.value == seat.role:
                loop.resume_after_wait(time.monotonic_ns() - self._arena.stamp(seat))
                return loop.running
        loop.resume_after_wait()  # it was our turn already, or we waited without a wake
        return loop.running


@dataclass(frozen=True, slots=True, init=False)
class PipeIo(WorkType):
    """Paired 1-byte pipe exchange after a `PIPE_IO_SPIN_ITERS` CPU burst."""

    _arena: PairArena = field(init=False, compare=False, repr=False, hash=False)
    _tag: str = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self) -> None:
        object.__setattr__(self, "_arena", PairArena())
        object.__setattr__(self, "_tag", f"{os.getpid()}-{id(self):x}")

    def _fifo(self, seat: Seat, role: int) -> str:
        """The FIFO that carries bytes to `role` of `seat`'s pair."""
        return os.path.join(tempfile.gettempdir(),
                            f"ktstr-pipeio-{self._tag}-{seat.slot}-{seat.generation}.{role}")

    def run(self, loop: WorkLoop) -> None:
        self._exchange(loop, lambda x: spin_batch(PIPE_IO_SPIN_ITERS, x))

    def _exchange(self, loop: WorkLoop, burst: Callable[[int], int]) -> None:
        """Take turns with the partner: `burst`, one work unit, a byte to the partner,
        then sleep until its byte comes back (`CachePipe` brings its own burst)."""
        fds: list[int] = []

        def open_pipes(seat: Seat) -> None:  # under the arena lock
            for role in (0, 1):
                if seat.role == 0:
                    os.mkfifo(self._fifo(seat, role), 0o600)
                # O_RDWR: the open does not wait for the other end (Linux).
                fds.append(os.open(self._fifo(seat, role),
                                   os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC))
            if seat.role == 1:  # both ends are open in both workers now
                self._unlink(seat)

        arena = self._arena
        try:
            with arena.seat(pair_key(), on_seat=open_pipes, on_leave=self._unlink) as seat:
                rfd, wfd = fds[seat.role], fds[seat.partner]
                poller = select.poll()
                poller.register(rfd, select.POLLIN)
                x = 1
                mine = seat.role == 0  # role 0 starts
                while mine or self._await_byte(loop, seat, rfd, poller):
                    mine = False
                    x = burst(x)
                    loop.spin()
                    loop.iterations += 1
                    arena.set_stamp(seat, time.monotonic_ns())
                    os.write(wfd, b"x")
                    if not loop.running:
                        break
        finally:
            for fd in fds:
                os.close(fd)

    def _unlink(self, seat: Seat) -> None:
        for role in (0, 1):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._fifo(seat, role))

    def _await_byte(self, loop: WorkLoop, seat: Seat, rfd: int,
                    poller: select.poll) -> bool:
        """Read the partner's byte (True), sleeping for it; False once stopped."""
        with contextlib.suppress(BlockingIOError):
            if os.read(rfd, 1):
                return loop.running  # already there: no sleep, no wakeup to time
        while loop.running:
            if not poller.poll(WAIT_SLICE_S * 1e3):
                continue
            try:
                got = os.read(rfd, 1)
            except BlockingIOError:
                continue
            if got:
                loop.resume_after_wait(time.monotonic_ns() - self._arena.stamp(seat))
                return True
        return False


@dataclass(frozen=True, slots=True, init=False)
class CachePipe(PipeIo):
    """`PipeIo`'s pipe hand-over with a cache-hot working set as the burst.

    Each burst sweeps the worker's own `CACHE_PIPE_SIZE_KIB` KiB buffer
    `CACHE_PIPE_PASSES` times (a `memmove` of each half onto the other: every
    line read and written, in C, no allocation), so the cost of a burst depends
    on whether the wakeup put the worker back on a CPU whose cache still holds
    it. The metric `burst_ns_mean` is the mean burst time, for comparing wake
    placements.
    """

    def __init__(self) -> None:
        PipeIo.__init__(self)  # not super(): slots=True rebuilds the class

    def run(self, loop: WorkLoop) -> None:
        half = CACHE_PIPE_SIZE_KIB * 512
        buf = (ctypes.c_char * (2 * half))()
        lo, hi = ctypes.addressof(buf), ctypes.addressof(buf) + half
        memmove, clock = ctypes.memmove, time.monotonic_ns
        spent = [0, 0]  # ns in bursts, bursts

        def burst(x: int) -> int:
            t0 = clock()
            for _ in range(CACHE_PIPE_PASSES):
                memmove(hi, lo, half)
                memmove(lo, hi, half)
            spent[0] += clock() - t0
            spent[1] += 1
            return x

        try:
            self._exchange(loop, burst)
        finally:
            loop.metrics["working_set_kib"] = float(CACHE_PIPE_SIZE_KIB)
            if spent[1]:
                loop.metrics["burst_ns_mean"] = spent[0] / spent[1]
