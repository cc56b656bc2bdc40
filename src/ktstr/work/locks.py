"""Lock, class-mismatch and producer/consumer work types: lock contention, wake
placement across CPUs, producer/consumer imbalance.

- `MutexContention(contenders, hold_iters, work_iters)`: `contenders` workers share
  one mutex: lock, `hold_iters` multiply-add steps inside, unlock, `work_iters`
  outside. With several contenders per CPU the holder gets preempted while the
  others queue behind it (lock-holder preemption, the convoy effect).
- `PriorityInversion(mode, hold_iters)`: three tiers per group. *low* takes the
  lock and holds it for `hold_iters` steps, *high* wakes every
  `PI_HIGH_PERIOD_S` and wants the same lock, *mid* never touches it and
  spins in bursts that can preempt *low*. Tiers are `SCHED_FIFO` priorities
  `PI_RT_PRIOS` when the worker may set them (`CAP_SYS_NICE`), else nice
  levels `PI_NICE_LEVELS` (noted in the report: the kernel boosts a lock
  holder only to an RT waiter's priority, so no boost can show then).
  `FutexLockMode.PI` makes the lock a priority-inheritance futex
  (`FUTEX_LOCK_PI`: *high* waiting boosts *low* above *mid*);
  `FutexLockMode.PLAIN` a plain one (`FUTEX_WAIT`/`FUTEX_WAKE`: it does not).
- `AsymmetricWaker(spin_iters, slow_class)`: `FutexPingPong` between a normal
  (`SCHED_OTHER`) worker and one that switches itself to `slow_class`
  (`SchedClass.IDLE` or `SchedClass.BATCH`); each side's report holds its own
  wake latency, and `metrics["sched_policy"]` says which side it was.
- `ProducerConsumerImbalance(producers, consumers, produce_iters, consume_iters,
  burst, pause)`: producers write 64-byte items (a time stamp) into one pipe
  per group, `burst` items then a `pause`-second sleep; consumers read them and
  spend `consume_iters` steps on each. Producers outpace consumers within a
  burst, so they block on the full pipe (its capacity set to one page, 64 items)
  until a consumer's read wakes them; consumers drain the queue in the pause and
  sleep on the empty pipe until a producer's write wakes them (one wake-latency
  sample per such wakeup: now minus the item's stamp).

The mutex. Python has no compare-and-swap, and ctypes exposes no atomics (GCC's
`__atomic_*` are builtins, not libc symbols). Rather than fake one, the lock is
glibc's own process-shared mutex (`pthread_mutex_t` living in the group's
shared memory, initialised once by the group's role 0): its fast path is a
userspace CAS in libc, its slow path is the futex. Both modes are robust
(a worker killed while holding it does not wedge the rest: the next locker gets
`EOWNERDEAD` and makes it consistent), so the lock word is the owner's TID with
`FUTEX_WAITERS` (bit 31) set while someone sleeps on it, and:

- `FutexLockMode.PLAIN` (`PTHREAD_PRIO_NONE`): contended waits are `FUTEX_WAIT`,
  unlocks with waiters `FUTEX_WAKE` (the kernel's `futex_wait`/`futex_wake`);
- `FutexLockMode.PI` (`PTHREAD_PRIO_INHERIT`): contended locks are
  `FUTEX_LOCK_PI` (an `rt_mutex` whose waiters boost the owner), unlocks with
  waiters `FUTEX_UNLOCK_PI` (ownership handed straight to the top waiter).

A locker first tries (`pthread_mutex_trylock`); a refusal counts as one
contended acquisition, then it waits with `pthread_mutex_timedlock` in slices
of `WAIT_SLICE_S` so it still sees its stop request. Every unlocker stamps
`CLOCK_MONOTONIC` just before unlocking; a locker that had to wait records
now minus that stamp as one wake-to-run sample (`wake_latency_us`).
Metrics: `acquisitions`, `contended` (acquisitions that had to wait),
`lock_wait_us_mean`/`lock_wait_us_max` (time from wanting the lock to holding it).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import fcntl
import os
import select
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from ktstr.errors import ConfigError, SystemError_
from ktstr.system.libc import LIBC, Timespec
from ktstr.system.proc import ThreadPriority
from ktstr.validators import count, seconds
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop, spin_batch
from ktstr.work.pairing import GroupArena, Seat, group_key
from ktstr.work.wake import WAIT_SLICE_S, FutexPingPong

MUTEX_CONTENTION_CONTENDERS = 4
MUTEX_CONTENTION_HOLD_ITERS = 256
MUTEX_CONTENTION_WORK_ITERS = 1024
#: Steps *low* holds the lock in `PriorityInversion` (long enough for *high* to queue).
PRIORITY_INVERSION_HOLD_ITERS = 4096
#: How often *high* wants the lock, seconds.
PI_HIGH_PERIOD_S = 0.002
#: *mid*'s CPU burst and the sleep after it, seconds: a duty cycle, so three RT tiers
#: on few CPUs cannot starve the rest of the system.
PI_MID_BURST_S = 0.01
PI_MID_SLEEP_S = 0.002
#: *low*'s sleep after each release, seconds (the same reason).
PI_LOW_PAUSE_S = 0.001
#: SCHED_FIFO priorities of the tiers low, mid, high.
PI_RT_PRIOS = (10, 20, 30)
#: Nice levels of the tiers low, mid, high without CAP_SYS_NICE.
PI_NICE_LEVELS = (10, 5, 0)
ASYMMETRIC_WAKER_SPIN_ITERS = 1024
PRODUCERS = 2
CONSUMERS = 1
PRODUCE_ITERS = 64
CONSUME_ITERS = 1024
PRODUCER_BURST = 64
PRODUCER_PAUSE_S = 0.02
#: Bytes per queue item (<= PIPE_BUF, so concurrent producers never interleave).
ITEM_BYTES = 64
#: Queue capacity in bytes: `F_SETPIPE_SZ` to one page (64 items).
QUEUE_BYTES = 4096

#: `pthread_mutex_t` room in the group's shared words (glibc: 40 bytes on x86_64,
#: 48 on aarch64), as int32 words; it starts 8-byte aligned.
MUTEX_WORDS = 16
FUTEX_WAITERS = 0x80000000
_PTHREAD_PROCESS_SHARED = 1
_PTHREAD_PRIO_INHERIT = 1
_PTHREAD_MUTEX_ROBUST = 1
_I64 = struct.Struct("=q")



class FutexLockMode(enum.Enum):
    """Which futex protocol the lock uses (see the module docstring)."""

    PLAIN = "plain"
    PI = "pi"


class SchedClass(enum.Enum):
    """The policy `AsymmetricWaker`'s second worker switches to."""

    BATCH = "batch"
    IDLE = "idle"

    @property
    def policy(self) -> int:
        return os.SCHED_BATCH if self is SchedClass.BATCH else os.SCHED_IDLE


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise SystemError_(f"{what} failed: {os.strerror(rc)}; hint: this needs glibc's "
                           "process-shared, robust (and for PI mode, PI) mutexes")


class SharedMutex:
    """glibc's process-shared robust mutex at `addr` (in memory all workers share)."""

    __slots__ = ("_abs", "_lock", "_timed", "_try", "_unlock", "addr", "word")

    def __init__(self, word: ctypes.c_int32) -> None:
        self.word = word  # the mutex's first int: glibc's lock word (the futex)
        self.addr = ctypes.addressof(word)
        self._try = LIBC.pthread_mutex_trylock
        self._timed = LIBC.pthread_mutex_timedlock
        self._unlock = LIBC.pthread_mutex_unlock
        self._abs = Timespec()

    @staticmethod
    def init(addr: int, mode: FutexLockMode) -> None:
        """Initialise the mutex at `addr` (once per group, before anyone locks it)."""
        attr = ctypes.create_string_buffer(64)  # pthread_mutexattr_t is 4-8 bytes
        _check(LIBC.pthread_mutexattr_init(attr), "pthread_mutexattr_init")
        _check(LIBC.pthread_mutexattr_setpshared(attr, _PTHREAD_PROCESS_SHARED),
               "pthread_mutexattr_setpshared")
        _check(LIBC.pthread_mutexattr_setrobust(attr, _PTHREAD_MUTEX_ROBUST),
               "pthread_mutexattr_setrobust")
        if mode is FutexLockMode.PI:
            _check(LIBC.pthread_mutexattr_setprotocol(attr, _PTHREAD_PRIO_INHERIT),
                   "pthread_mutexattr_setprotocol(PTHREAD_PRIO_INHERIT)")
        _check(LIBC.pthread_mutex_init(ctypes.c_void_p(addr), attr), "pthread_mutex_init")
        LIBC.pthread_mutexattr_destroy(attr)

    def try_lock(self) -> bool:
        """Take the lock if it is free (True), else False without waiting."""
        rc = self._try(ctypes.c_void_p(self.addr))
        if rc == errno.EBUSY:
            return False
        self._owned(rc)
        return True

    def lock(self, loop: WorkLoop) -> bool:
        """Wait for the lock in `WAIT_SLICE_S` slices; False (not held) once stopped."""
        ts = self._abs
        while True:
            deadline = time.time() + WAIT_SLICE_S
            ts.tv_sec = int(deadline)
            ts.tv_nsec = int((deadline % 1) * 1e9)
            rc = self._timed(ctypes.c_void_p(self.addr), ctypes.byref(ts))
            if rc != errno.ETIMEDOUT:
                self._owned(rc)
                return True
            if not loop.running:
                return False

    def unlock(self) -> None:
        _check(self._unlock(ctypes.c_void_p(self.addr)), "pthread_mutex_unlock")

    def has_waiters(self) -> bool:
        """Whether someone sleeps on the lock in the kernel (`FUTEX_WAITERS`)."""
        return bool(self.word.value & FUTEX_WAITERS)

    def _owned(self, rc: int) -> None:
        if rc == errno.EOWNERDEAD:  # the last holder died holding it: repair, keep it
            _check(LIBC.pthread_mutex_consistent(ctypes.c_void_p(self.addr)),
                   "pthread_mutex_consistent")
        elif rc != 0:
            _check(rc, "pthread_mutex_lock")


def _mode(value: object, what: str) -> FutexLockMode:
    if isinstance(value, FutexLockMode):
        return value
    try:
        return FutexLockMode(value)
    except ValueError:
        raise ConfigError(
            f"{what} = {value!r} is not a futex lock mode; hint: use FutexLockMode.PI "
            "(priority inheritance) or FutexLockMode.PLAIN") from None


class _LockStats:
    """Per-worker lock figures, written to `loop.metrics` at the end of the run."""

    __slots__ = ("acquisitions", "contended", "wait_max_ns", "wait_ns")

    def __init__(self) -> None:
        self.acquisitions = 0
        self.contended = 0
        self.wait_ns = 0
        self.wait_max_ns = 0

    def publish(self, loop: WorkLoop) -> None:
        loop.metrics["acquisitions"] = float(self.acquisitions)
        loop.metrics["contended"] = float(self.contended)
        if self.acquisitions:
            loop.metrics["lock_wait_us_mean"] = self.wait_ns / self.acquisitions / 1e3
        loop.metrics["lock_wait_us_max"] = self.wait_max_ns / 1e3


def _acquire(loop: WorkLoop, mutex: SharedMutex, stamp: ctypes.c_int64,
             stats: _LockStats) -> bool:
    """Take `mutex` (False once stopped first), counting contention and wait time;
    a blocked acquisition is one wake-to-run sample after the unlock that let us in."""
    t0 = time.monotonic_ns()
    if mutex.try_lock():
        waited = 0
    else:
        stats.contended += 1
        if not mutex.lock(loop):
            return False
        now = time.monotonic_ns()
        waited = now - t0
        last_unlock = stamp.value
        loop.resume_after_wait(now - last_unlock if last_unlock >= t0 else None, now=now)
    stats.acquisitions += 1
    stats.wait_ns += waited
    if waited > stats.wait_max_ns:
        stats.wait_max_ns = waited
    return True


def _release(mutex: SharedMutex, stamp: ctypes.c_int64) -> None:
    stamp.value = time.monotonic_ns()
    mutex.unlock()


def _lock_arena(size: int) -> GroupArena:
    return GroupArena(size, words=MUTEX_WORDS, stamps=1)


@dataclass(frozen=True, slots=True, init=False)
class MutexContention(WorkType):
    """`contenders` workers per group contending for one plain futex mutex."""

    contenders: int
    hold_iters: int
    work_iters: int
    _arena: GroupArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self, contenders: int = MUTEX_CONTENTION_CONTENDERS,
                 hold_iters: int = MUTEX_CONTENTION_HOLD_ITERS,
                 work_iters: int = MUTEX_CONTENTION_WORK_ITERS) -> None:
        n = count(contenders, "MutexContention contenders", minimum=2)
        object.__setattr__(self, "contenders", n)
        object.__setattr__(self, "hold_iters",
                           count(hold_iters, "MutexContention hold_iters", minimum=0))
        object.__setattr__(self, "work_iters",
                           count(work_iters, "MutexContention work_iters", minimum=0))
        object.__setattr__(self, "_arena", _lock_arena(n))

    def run(self, loop: WorkLoop) -> None:
        arena = self._arena
        with arena.seat(group_key(), on_seat=_init_mutex(arena, FutexLockMode.PLAIN)) as seat:
            mutex = SharedMutex(arena.word(seat, 0))
            stamp = arena.stamp_cell(seat)
            stats = _LockStats()
            hold, work = self.hold_iters, self.work_iters
            x = 1
            try:
                while loop.running and _acquire(loop, mutex, stamp, stats):
                    x = spin_batch(hold, x)
                    _release(mutex, stamp)
                    loop.iterations += 1
                    x = spin_batch(work, x)
                    loop.spin()
            finally:
                stats.publish(loop)


def _init_mutex(arena: GroupArena, mode: FutexLockMode) -> Callable[[Seat], None]:
    """An `on_seat` callback: role 0 initialises the group's mutex, under the arena lock."""

    def on_seat(seat: Seat) -> None:
        if seat.role == 0:
            SharedMutex.init(ctypes.addressof(arena.word(seat, 0)), mode)

    return on_seat


@dataclass(frozen=True, slots=True, init=False)
class PriorityInversion(WorkType):
    """Low, mid and high tiers; low and high share one lock, mid preempts low."""

    mode: FutexLockMode
    hold_iters: int
    _arena: GroupArena = field(init=False, compare=False, repr=False, hash=False)

    LOW, MID, HIGH = 0, 1, 2
    TIERS = ("low", "mid", "high")

    def __init__(self, mode: FutexLockMode | str = FutexLockMode.PI,
                 hold_iters: int = PRIORITY_INVERSION_HOLD_ITERS) -> None:
        object.__setattr__(self, "mode", _mode(mode, "PriorityInversion mode"))
        object.__setattr__(self, "hold_iters",
                           count(hold_iters, "PriorityInversion hold_iters"))
        object.__setattr__(self, "_arena", _lock_arena(3))

    def run(self, loop: WorkLoop) -> None:
        arena = self._arena
        with arena.seat(group_key(), on_seat=_init_mutex(arena, self.mode)) as seat:
            tier = seat.role
            loop.metrics["tier"] = float(tier)
            loop.metrics["rt"] = float(_set_tier(loop, tier))
            mutex = SharedMutex(arena.word(seat, 0))
            stamp = arena.stamp_cell(seat)
            stats = _LockStats()
            try:
                self._play(loop, tier, mutex, stamp, stats)
            finally:
                if tier != self.MID:
                    stats.publish(loop)

    def _play(self, loop: WorkLoop, tier: int, mutex: SharedMutex, stamp: ctypes.c_int64,
              stats: _LockStats) -> None:
        """Run `tier`'s part until the stop: mid spins and sleeps, low holds the lock
        long, high takes it briefly every period."""
        if tier == self.MID:
            while loop.running:
                loop.spin_for(PI_MID_BURST_S)
                loop.iterations += 1
                loop.sleep_for(PI_MID_SLEEP_S)
        elif tier == self.LOW:
            self._low(loop, mutex, stamp, stats)
        else:
            hold = max(1, self.hold_iters // 8)
            x = 1
            while loop.running:
                loop.sleep_for(PI_HIGH_PERIOD_S)
                if not _acquire(loop, mutex, stamp, stats):
                    break
                x = spin_batch(hold, x)
                _release(mutex, stamp)
                loop.iterations += 1
                loop.spin()

    def _low(self, loop: WorkLoop, mutex: SharedMutex, stamp: ctypes.c_int64,
             stats: _LockStats) -> None:
        """Hold the lock long; while someone waits on it, look at our own effective
        priority: below the base one means the kernel boosted us (PI)."""
        prio = ThreadPriority()  # p->prio - 100, lowered by a PI boost
        base = prio.read()
        boosts = checks = 0
        chunk = max(1, self.hold_iters // 4)
        x = 1
        try:
            while loop.running and _acquire(loop, mutex, stamp, stats):
                waited_on = boosted = False
                for _ in range(4):  # the boost follows the waiter's FUTEX_WAITERS bit
                    x = spin_batch(chunk, x)
                    if not boosted and mutex.has_waiters():  # /proc only then: it is dear
                        waited_on = True
                        boosted = prio.read() < base
                checks += waited_on
                boosts += boosted
                _release(mutex, stamp)
                loop.iterations += 1
                loop.spin()
                loop.sleep_for(PI_LOW_PAUSE_S)
        finally:
            prio.close()
            loop.metrics["base_priority"] = float(base)
            loop.metrics["holds_with_waiters"] = float(checks)
            loop.metrics["pi_boosts_seen"] = float(boosts)


def _set_tier(loop: WorkLoop, tier: int) -> bool:
    """Put the calling worker in its tier: SCHED_FIFO if allowed (True), else nice."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PI_RT_PRIOS[tier]))
        return True
    except PermissionError:
        pass
    loop.note("PriorityInversion: no CAP_SYS_NICE, tiers are nice levels "
              f"{PI_NICE_LEVELS} instead of SCHED_FIFO {PI_RT_PRIOS}; the kernel boosts a "
              "lock holder only to an RT waiter's priority, so PI shows no boost")
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, PI_NICE_LEVELS[tier])
    return False


@dataclass(frozen=True, slots=True, init=False)
class AsymmetricWaker(FutexPingPong):
    """`FutexPingPong` where role 1 runs in `slow_class` (SCHED_IDLE or SCHED_BATCH).

    Role 0 keeps the policy it was spawned with (normally SCHED_OTHER). Each
    worker's wake latency is its own side's: how long it took to run after the
    other one woke it across the class boundary.
    """

    slow_class: SchedClass

    def __init__(self, spin_iters: int = ASYMMETRIC_WAKER_SPIN_ITERS,
                 slow_class: SchedClass | str = SchedClass.IDLE) -> None:
        FutexPingPong.__init__(self, spin_iters)  # not super(): slots=True rebuilds the class
        if not isinstance(slow_class, SchedClass):
            try:
                slow_class = SchedClass(slow_class)
            except ValueError:
                raise ConfigError(
                    f"AsymmetricWaker slow_class = {slow_class!r} is not a scheduling "
                    "class; hint: use SchedClass.IDLE or SchedClass.BATCH") from None
        object.__setattr__(self, "slow_class", slow_class)

    def _seated(self, loop: WorkLoop, seat: Seat) -> None:
        if seat.role == 1:
            os.sched_setscheduler(0, self.slow_class.policy, os.sched_param(0))
        loop.metrics["sched_policy"] = float(os.sched_getscheduler(0))


@dataclass(frozen=True, slots=True, init=False)
class ProducerConsumerImbalance(WorkType):
    """`producers` fast writers and `consumers` slow readers around one pipe per group."""

    producers: int
    consumers: int
    produce_iters: int
    consume_iters: int
    burst: int
    pause: float
    _arena: GroupArena = field(init=False, compare=False, repr=False, hash=False)
    _tag: str = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self, producers: int = PRODUCERS, consumers: int = CONSUMERS,
                 produce_iters: int = PRODUCE_ITERS, consume_iters: int = CONSUME_ITERS,
                 burst: int = PRODUCER_BURST,
                 pause: float | timedelta = PRODUCER_PAUSE_S) -> None:
        what = "ProducerConsumerImbalance"
        object.__setattr__(self, "producers", count(producers, f"{what} producers"))
        object.__setattr__(self, "consumers", count(consumers, f"{what} consumers"))
        object.__setattr__(self, "produce_iters",
                           count(produce_iters, f"{what} produce_iters", minimum=0))
        object.__setattr__(self, "consume_iters",
                           count(consume_iters, f"{what} consume_iters", minimum=0))
        object.__setattr__(self, "burst", count(burst, f"{what} burst"))
        object.__setattr__(self, "pause", seconds(pause, f"{what} pause"))
        object.__setattr__(self, "_arena", GroupArena(self.producers + self.consumers,
                                                      words=1, stamps=0))
        object.__setattr__(self, "_tag", f"{os.getpid()}-{id(self):x}")

    def _fifo(self, seat: Seat) -> str:
        return os.path.join(tempfile.gettempdir(),
                            f"ktstr-pcq-{self._tag}-{seat.slot}-{seat.generation}")

    def _unlink(self, seat: Seat) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._fifo(seat))

    def run(self, loop: WorkLoop) -> None:
        fds: list[int] = []
        size = self.group_size or 2

        def open_queue(seat: Seat) -> None:  # under the arena lock
            if seat.role == 0:
                os.mkfifo(self._fifo(seat), 0o600)
            # O_RDWR: the open does not wait for the other end (Linux).
            fds.append(os.open(self._fifo(seat), os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC))
            if seat.role == 0:
                try:
                    fcntl.fcntl(fds[0], fcntl.F_SETPIPE_SZ, QUEUE_BYTES)
                except OSError as err:
                    loop.note(f"ProducerConsumerImbalance: F_SETPIPE_SZ {QUEUE_BYTES} "
                              f"refused ({err.strerror}); the queue is the default size")
            if arena.present(seat) == size:  # everyone has it open now
                self._unlink(seat)

        arena = self._arena
        try:
            with arena.seat(group_key(), on_seat=open_queue, on_leave=self._unlink) as seat:
                fd = fds[0]
                producing = seat.role < self.producers
                loop.metrics["producer"] = float(producing)
                if producing:
                    self._produce(loop, fd)
                else:
                    self._consume(loop, fd)
        finally:
            for fd in fds:
                os.close(fd)

    def _produce(self, loop: WorkLoop, fd: int) -> None:
        item = bytearray(ITEM_BYTES)
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        iters, burst, clock = self.produce_iters, self.burst, time.monotonic_ns
        produced = full = 0
        x = 1
        try:
            while loop.running:
                for _ in range(burst):
                    x = spin_batch(iters, x)
                    _I64.pack_into(item, 0, clock())
                    while True:
                        try:
                            os.write(fd, item)
                            break
                        except BlockingIOError:
                            full += 1  # the queue is full: sleep until a reader makes room
                            while loop.running and not poller.poll(WAIT_SLICE_S * 1e3):
                                pass
                            loop.resume_after_wait()
                            if not loop.running:
                                return
                    produced += 1
                    loop.iterations += 1
                    loop.spin()
                loop.sleep_for(self.pause)
        finally:
            loop.metrics["produced"] = float(produced)
            loop.metrics["queue_full_waits"] = float(full)

    def _consume(self, loop: WorkLoop, fd: int) -> None:
        item = bytearray(ITEM_BYTES)
        bufs = [item]
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        iters, clock = self.consume_iters, time.monotonic_ns
        consumed = empty = 0
        x = 1
        try:
            while loop.running:
                try:
                    if os.readv(fd, bufs) != ITEM_BYTES:
                        continue
                except BlockingIOError:
                    empty += 1  # nothing queued: sleep until a producer's write wakes us
                    while loop.running and not poller.poll(WAIT_SLICE_S * 1e3):
                        pass
                    try:
                        got = os.readv(fd, bufs)
                    except BlockingIOError:  # another consumer took it
                        loop.resume_after_wait()
                        continue
                    if got != ITEM_BYTES:
                        loop.resume_after_wait()
                        continue
                    now = clock()
                    loop.resume_after_wait(now - _I64.unpack_from(item, 0)[0], now=now)
                x = spin_batch(iters, x)
                consumed += 1
                loop.iterations += 1
                loop.spin()
        finally:
            loop.metrics["consumed"] = float(consumed)
            loop.metrics["queue_empty_waits"] = float(empty)
