"""Group wake work types: fan-out wake storms, broadcast wakeups, epoll exclusive-wake
paths.

- `FutexFanOut(fan_out, spin_iters)`: groups of one messenger and `fan_out`
  receivers. The messenger spins `spin_iters` multiply-add steps, bumps the
  group's generation word and wakes every receiver with one
  `FUTEX_WAKE(INT_MAX)`; each receiver, back from `FUTEX_WAIT`, does one work
  unit and checks in. The messenger starts the next round once all `fan_out`
  receivers have checked in, so every round is a real 1:N wake of sleeping
  tasks, not a messenger racing ahead of its receivers.
- `FanOutCompute(fan_out, matrix_dim, operations, sleep_us)`: the same rounds;
  a woken receiver think-sleeps `sleep_us` (`clock_nanosleep`) then does
  `operations` `matrix_dim`-square matrix multiplications before checking in.
- `ThunderingHerd(waiters, batches, inter_batch_ms)`: one waker and `waiters`
  waiters parked on ONE futex word; once all are back, the waker sleeps
  `inter_batch_ms` (so they are really parked) and broadcast-wakes the herd
  with `FUTEX_WAKE(INT_MAX)`. After `batches` broadcasts the waker stops
  waking and idles until the run ends (`batches` is a total, not a rate).
- `EpollStorm(producers, consumers, events_per_burst)`: per group one eventfd
  (`EFD_SEMAPHORE`: one read takes one event). Each consumer has its own epoll
  instance watching it with `EPOLLEXCLUSIVE`, so an event write wakes one
  consumer (exclusive autoremove wake), not all. A producer writes
  `events_per_burst` events back to back, then waits until consumers have
  taken every outstanding event before its next burst, so consumers keep going
  back to sleep in `epoll_wait` and every event is a wakeup.

Check-ins and the outstanding-event count need an atomic add across
processes; Python has none, so it is the kernel's: `FUTEX_WAKE_OP` adds to the
word and wakes its waiter when the old value says this was the last one
(`futex_add_wake`). Waiting sides sleep in `FUTEX_WAIT` slices of
`WAIT_SLICE_S` so they see their own stop request promptly.

Wake-to-run latency: the waker stores `time.monotonic_ns()` in the group's
stamp just before it wakes (before the `FUTEX_WAKE`, before a burst's first
event write); a wakee that really slept and was woken records `now - stamp`
through `WorkLoop.resume_after_wait`. A wait that found its event already there,
or timed out, is not a wakeup and is not sampled. The role-0 workers
(messenger, herd waker) and producers are not woken by a stamped event: they
record no samples.

Groups form through `ktstr.work.pairing.GroupArena`: role 0 is the messenger /
waker, roles 1.. the receivers / waiters; for `EpollStorm` roles
0..producers-1 produce and the rest consume.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ktstr.errors import ConfigError
from ktstr.system.libc import syscall
from ktstr.validators import count
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop, spin_batch
from ktstr.work.pairing import MAX_GROUP_SIZE, GroupArena, Seat, group_key
from ktstr.work.wake import WAIT_SLICE_S, futex_nr, futex_wait, futex_wake

FUTEX_FAN_OUT_FAN_OUT = 4
FUTEX_FAN_OUT_SPIN_ITERS = 1024
FAN_OUT_COMPUTE_FAN_OUT = 4
#: Side of the square matrices a `FanOutCompute` receiver multiplies per operation.
FAN_OUT_COMPUTE_MATRIX_DIM = 16
FAN_OUT_COMPUTE_OPERATIONS = 1
FAN_OUT_COMPUTE_SLEEP_US = 100
THUNDERING_HERD_WAITERS = 5
THUNDERING_HERD_BATCHES = 10_000
THUNDERING_HERD_INTER_BATCH_MS = 5
EPOLL_STORM_PRODUCERS = 1
EPOLL_STORM_CONSUMERS = 4
EPOLL_STORM_EVENTS_PER_BURST = 8
#: Groups one `EpollStorm` instance can host at once: its eventfds are made
#: before the workers fork, one per group slot.
EPOLL_STORM_GROUPS = 8
#: Multiply-add steps of an `EpollStorm` consumer's burst per event.
EPOLL_STORM_SPIN_ITERS = 256

FUTEX_WAKE_OP = 5
INT_MAX = 0x7FFFFFFF
_FUTEX_OP_ADD = 1
_FUTEX_OP_CMP_EQ = 0
#: FUTEX_WAKE_OP's operand and comparison argument are signed 12-bit fields.
OPARG_MIN, OPARG_MAX = -2048, 2047

# Group words (GroupArena words) of the fan-out and herd types.
_GEN = 0  # the generation the wakees wait on
_ACK = 1  # receivers checked in this round (FUTEX_WAKE_OP adds)
# EpollStorm's word.
_PENDING = 0  # events written and not yet taken


def wake_op(delta: int, wake_if_old: int) -> int:
    """The `FUTEX_WAKE_OP` operation word: add `delta`, compare old == `wake_if_old`."""
    for what, v in (("delta", delta), ("wake_if_old", wake_if_old)):
        if not OPARG_MIN <= v <= OPARG_MAX:
            raise ValueError(f"FUTEX_WAKE_OP {what} {v} outside {OPARG_MIN}..{OPARG_MAX}")
    return ((_FUTEX_OP_ADD << 28) | (_FUTEX_OP_CMP_EQ << 24) | ((delta & 0xFFF) << 12)
            | (wake_if_old & 0xFFF))


def futex_add_wake(addr: int, op: int, waiters: int = 1) -> int:
    """Atomically add to the int32 at `addr` and wake up to `waiters` of its
    waiters if the old value matched (`op` from `wake_op`); how many were woken."""
    rc = syscall(ctypes.c_long(futex_nr()), ctypes.c_void_p(addr),
                 ctypes.c_int(FUTEX_WAKE_OP), ctypes.c_int(0), ctypes.c_void_p(waiters),
                  ctypes.c_void_p(addr), ctypes.c_int(op))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"futex(FUTEX_WAKE_OP): {os.strerror(err)}")
    return int(rc)


def _members(value: object, what: str, minimum: int, others: int) -> int:
    """A group member count: >= `minimum` and leaving room for `others` more roles."""
    n = count(value, what, minimum)
    if n + others > MAX_GROUP_SIZE:
        raise ConfigError(
            f"{what} = {n} makes groups of {n + others} workers; hint: at most "
            f"{MAX_GROUP_SIZE - others} (groups have at most {MAX_GROUP_SIZE} workers)")
    return n


def _wait_change(loop: WorkLoop, word: ctypes.c_int32, addr: int, seen: int) -> bool | None:
    """Sleep until `word` leaves `seen`: True if a FUTEX_WAKE ended the sleep,
    False if it changed without one, None once the worker is stopped."""
    woken = False
    while word.value == seen:
        if not loop.running:
            return None
        woken = futex_wait(addr, seen, WAIT_SLICE_S) == 0
    return woken


def _wait_at_least(loop: WorkLoop, word: ctypes.c_int32, addr: int, target: int) -> bool:
    """Sleep until `word` >= `target` (True) or the worker is stopped (False)."""
    while (v := word.value) < target:
        if not loop.running:
            return False
        futex_wait(addr, v, WAIT_SLICE_S)
    loop.resume_after_wait()
    return loop.running


def _wait_zero(loop: WorkLoop, word: ctypes.c_int32, addr: int) -> bool:
    """Sleep until `word` is 0 (True) or the worker is stopped (False)."""
    while (v := word.value) != 0:
        if not loop.running:
            return False
        futex_wait(addr, v, WAIT_SLICE_S)
    loop.resume_after_wait()
    return loop.running


def _messenger(loop: WorkLoop, arena: GroupArena, seat: Seat, receivers: int,
               before_wake: Callable[[int], bool]) -> None:
    """Role 0 of a 1:N group: once all `receivers` checked in, `before_wake(round)`
    (False: stop waking), stamp, bump the generation, wake everyone."""
    gen, ack = arena.word(seat, _GEN), arena.word(seat, _ACK)
    gen_addr, ack_addr = ctypes.addressof(gen), ctypes.addressof(ack)
    stamp = arena.stamp_cell(seat)
    rounds = 0
    while _wait_at_least(loop, ack, ack_addr, receivers):
        ack.value = 0  # every receiver is now waiting for the next generation
        if not before_wake(rounds):
            _idle(loop)
            return
        rounds += 1
        loop.iterations += 1
        stamp.value = time.monotonic_ns()
        gen.value = gen.value + 1  # c_int32: wraps
        futex_wake(gen_addr, INT_MAX)


def _receiver(loop: WorkLoop, arena: GroupArena, seat: Seat, receivers: int,
              work: Callable[[], object]) -> None:
    """Roles 1..N of a 1:N group: check in, sleep for the next generation, sample
    the wake, do `work`, check in again."""
    gen, ack = arena.word(seat, _GEN), arena.word(seat, _ACK)
    gen_addr, ack_addr = ctypes.addressof(gen), ctypes.addressof(ack)
    stamp = arena.stamp_cell(seat)
    check_in = wake_op(1, receivers - 1)  # the last one in wakes the messenger
    seen = gen.value
    futex_add_wake(ack_addr, check_in)
    while True:
        woken = _wait_change(loop, gen, gen_addr, seen)
        if woken is None:
            return
        now = time.monotonic_ns()
        seen = gen.value
        loop.resume_after_wait(now - stamp.value if woken else None, now=now)
        work()
        loop.iterations += 1
        futex_add_wake(ack_addr, check_in)


def _pause(loop: WorkLoop, secs: float) -> None:
    """Sleep `secs` in stop-aware slices; a chosen pause, so not a scheduling gap."""
    end = time.monotonic() + secs
    while loop.running and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, WAIT_SLICE_S))
    loop.resume_after_wait()


def _idle(loop: WorkLoop) -> None:
    """Stay alive without working until stopped (a herd waker past its batches)."""
    idle = ctypes.c_int32(0)
    addr = ctypes.addressof(idle)
    while loop.running:
        futex_wait(addr, 0, WAIT_SLICE_S)
        loop.resume_after_wait()


@dataclass(frozen=True, slots=True, init=False)
class FutexFanOut(WorkType):
    """One messenger wakes `fan_out` receivers per round; group of `fan_out + 1`."""

    fan_out: int
    spin_iters: int
    _arena: GroupArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self, fan_out: int = FUTEX_FAN_OUT_FAN_OUT,
                 spin_iters: int = FUTEX_FAN_OUT_SPIN_ITERS) -> None:
        fan_out = _members(fan_out, "FutexFanOut fan_out", 1, 1)
        object.__setattr__(self, "fan_out", fan_out)
        object.__setattr__(self, "spin_iters",
                           count(spin_iters, "FutexFanOut spin_iters", minimum=0))
        object.__setattr__(self, "_arena", GroupArena(fan_out + 1, words=2, stamps=1))

    def run(self, loop: WorkLoop) -> None:
        arena = self._arena
        with arena.seat(group_key()) as seat:
            loop.metrics["group_role"] = seat.role
            if seat.role == 0:
                x = 1

                def think(_round: int) -> bool:
                    nonlocal x
                    x = spin_batch(self.spin_iters, x)
                    loop.spin()
                    return True

                _messenger(loop, arena, seat, self.fan_out, think)
            else:
                _receiver(loop, arena, seat, self.fan_out, loop.spin)


def matmul(a: list[float], b: list[float], c: list[float], n: int) -> None:
    """c = a @ b for row-major `n` x `n` matrices held in flat lists (c preallocated)."""
    for i in range(n):
        row = i * n
        for j in range(n):
            s = 0.0
            k_n = j
            for k in range(row, row + n):
                s += a[k] * b[k_n]
                k_n += n
            c[row + j] = s


@dataclass(frozen=True, slots=True, init=False)
class FanOutCompute(WorkType):
    """Fan-out whose receivers think-sleep `sleep_us`, then multiply matrices."""

    fan_out: int
    matrix_dim: int
    operations: int
    sleep_us: int
    _arena: GroupArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self, fan_out: int = FAN_OUT_COMPUTE_FAN_OUT,
                 matrix_dim: int = FAN_OUT_COMPUTE_MATRIX_DIM,
                 operations: int = FAN_OUT_COMPUTE_OPERATIONS,
                 sleep_us: int = FAN_OUT_COMPUTE_SLEEP_US) -> None:
        fan_out = _members(fan_out, "FanOutCompute fan_out", 1, 1)
        object.__setattr__(self, "fan_out", fan_out)
        object.__setattr__(self, "matrix_dim",
                           count(matrix_dim, "FanOutCompute matrix_dim", minimum=1))
        object.__setattr__(self, "operations",
                           count(operations, "FanOutCompute operations", minimum=1))
        object.__setattr__(self, "sleep_us",
                           count(sleep_us, "FanOutCompute sleep_us", minimum=0))
        object.__setattr__(self, "_arena", GroupArena(fan_out + 1, words=2, stamps=1))

    def run(self, loop: WorkLoop) -> None:
        arena = self._arena
        with arena.seat(group_key()) as seat:
            loop.metrics["group_role"] = seat.role
            if seat.role == 0:
                def wake_round(_round: int) -> bool:
                    loop.spin()
                    return True

                _messenger(loop, arena, seat, self.fan_out, wake_round)
                return
            n, ops, think_s = self.matrix_dim, self.operations, self.sleep_us / 1e6
            a = [float(i % 7 + 1) for i in range(n * n)]
            b = [float(i % 5 + 1) for i in range(n * n)]
            c = [0.0] * (n * n)

            def compute() -> None:
                if think_s:
                    time.sleep(think_s)  # clock_nanosleep: a think pause, not a gap
                    loop.resume_after_wait()
                for _ in range(ops):
                    matmul(a, b, c, n)
                loop.spin()

            _receiver(loop, arena, seat, self.fan_out, compute)


@dataclass(frozen=True, slots=True, init=False)
class ThunderingHerd(WorkType):
    """`waiters` tasks on one futex word, broadcast-woken `batches` times,
    `inter_batch_ms` apart; group of `waiters + 1`."""

    waiters: int
    batches: int
    inter_batch_ms: int
    _arena: GroupArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self, waiters: int = THUNDERING_HERD_WAITERS,
                 batches: int = THUNDERING_HERD_BATCHES,
                 inter_batch_ms: int = THUNDERING_HERD_INTER_BATCH_MS) -> None:
        waiters = _members(waiters, "ThunderingHerd waiters", 1, 1)
        object.__setattr__(self, "waiters", waiters)
        object.__setattr__(self, "batches", count(batches, "ThunderingHerd batches"))
        object.__setattr__(self, "inter_batch_ms",
                           count(inter_batch_ms, "ThunderingHerd inter_batch_ms", minimum=0))
        object.__setattr__(self, "_arena", GroupArena(waiters + 1, words=2, stamps=1))

    def run(self, loop: WorkLoop) -> None:
        arena = self._arena
        with arena.seat(group_key()) as seat:
            loop.metrics["group_role"] = seat.role
            pause = self.inter_batch_ms / 1e3
            if seat.role == 0:
                def before_broadcast(done: int) -> bool:
                    if done >= self.batches:
                        return False
                    _pause(loop, pause)  # the herd parks again meanwhile
                    loop.spin()
                    return loop.running

                _messenger(loop, arena, seat, self.waiters, before_broadcast)
            else:
                _receiver(loop, arena, seat, self.waiters, loop.spin)


@dataclass(frozen=True, slots=True, init=False)
class EpollStorm(WorkType):
    """eventfd producers and `EPOLLEXCLUSIVE` epoll_wait consumers; group of
    `producers + consumers`."""

    producers: int
    consumers: int
    events_per_burst: int
    _arena: GroupArena = field(init=False, compare=False, repr=False, hash=False)
    _eventfds: tuple[int, ...] = field(init=False, compare=False, repr=False, hash=False)
    _owner: int = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self, producers: int = EPOLL_STORM_PRODUCERS,
                 consumers: int = EPOLL_STORM_CONSUMERS,
                 events_per_burst: int = EPOLL_STORM_EVENTS_PER_BURST) -> None:
        producers = _members(producers, "EpollStorm producers", 1, 1)
        consumers = _members(consumers, "EpollStorm consumers", 1, producers)
        events = count(events_per_burst, "EpollStorm events_per_burst")
        if events > OPARG_MAX:
            raise ConfigError(
                f"EpollStorm events_per_burst = {events} is too big; hint: at most "
                f"{OPARG_MAX} (the outstanding count is added with FUTEX_WAKE_OP)")
        object.__setattr__(self, "producers", producers)
        object.__setattr__(self, "consumers", consumers)
        object.__setattr__(self, "events_per_burst", events)
        object.__setattr__(self, "_arena", GroupArena(producers + consumers, words=1,
                                                      stamps=1, slots=EPOLL_STORM_GROUPS))
        flags = os.EFD_SEMAPHORE | os.EFD_NONBLOCK | os.EFD_CLOEXEC
        object.__setattr__(self, "_eventfds",
                           tuple(os.eventfd(0, flags) for _ in range(EPOLL_STORM_GROUPS)))
        object.__setattr__(self, "_owner", os.getpid())

    def __del__(self) -> None:
        if getattr(self, "_owner", None) == os.getpid():
            for fd in self._eventfds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def run(self, loop: WorkLoop) -> None:
        arena = self._arena

        def drain(seat: Seat) -> None:  # under the arena lock: a new group, a clean fd
            if seat.role == 0 and arena.present(seat) == 1:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        os.eventfd_read(self._eventfds[seat.slot])

        with arena.seat(group_key(), on_seat=drain) as seat:
            loop.metrics["group_role"] = seat.role
            efd = self._eventfds[seat.slot]
            if seat.role < self.producers:
                self._produce(loop, seat, efd)
            else:
                self._consume(loop, seat, efd)

    def _produce(self, loop: WorkLoop, seat: Seat, efd: int) -> None:
        pending = self._arena.word(seat, _PENDING)
        addr = ctypes.addressof(pending)
        stamp = self._arena.stamp_cell(seat)
        events = self.events_per_burst
        add = wake_op(events, OPARG_MIN)  # count them in, wake nobody (old never -2048)
        one = (1).to_bytes(8, "little")
        while _wait_zero(loop, pending, addr):
            loop.spin()
            futex_add_wake(addr, add, 0)  # counted before any consumer can take one
            stamp.value = time.monotonic_ns()
            for _ in range(events):
                os.write(efd, one)
            loop.iterations += 1
            loop.metrics["events_written"] = loop.iterations * events

    def _consume(self, loop: WorkLoop, seat: Seat, efd: int) -> None:
        pending = self._arena.word(seat, _PENDING)
        addr = ctypes.addressof(pending)
        stamp = self._arena.stamp_cell(seat)
        taken = wake_op(-1, 1)  # the last event taken wakes the waiting producers
        buf = bytearray(8)
        bufs = [buf]
        ep = select.epoll(1)
        ep.register(efd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
        x = 1
        empty = 0
        loop.metrics["empty_wakeups"] = 0
        try:
            while loop.running:
                try:
                    os.readv(efd, bufs)  # one event already there: no sleep, no sample
                except BlockingIOError:
                    if not ep.poll(WAIT_SLICE_S, 1):
                        continue
                    now = time.monotonic_ns()
                    try:
                        os.readv(efd, bufs)
                    except BlockingIOError:  # another consumer took it first
                        loop.resume_after_wait(now=now)
                        empty += 1
                        loop.metrics["empty_wakeups"] = empty
                        continue
                    loop.resume_after_wait(now - stamp.value, now=now)
                x = spin_batch(EPOLL_STORM_SPIN_ITERS, x)
                loop.spin()
                loop.iterations += 1
                loop.metrics["events_taken"] = loop.iterations
                futex_add_wake(addr, taken, INT_MAX)
        finally:
            ep.close()
