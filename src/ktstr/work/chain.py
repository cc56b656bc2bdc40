"""`WakeChain(depth, wake, work_per_hop)`, cross-CPU wake latency: a
ring of `depth` workers passing one token, waker to wakee, hop after hop.

The worker holding the token spins `work_per_hop` seconds of work units, then
hands the token to the next stage round the ring and sleeps until the token
comes round again. How a hop wakes its successor is `wake` (`WakeMechanism`):

- `PIPE`: one FIFO per stage; the hop is a 1-byte write, and a pipe write wakes
  the reader through `wake_up_interruptible_sync_poll`, i.e. with `WF_SYNC`
  (the waker is about to sleep: the wakee may take its CPU).
- `FUTEX`: one futex word per stage in shared memory; the hop sets the
  successor's word and `FUTEX_WAKE`s exactly that stage (no `WF_SYNC`).

`group_size` is `depth`: each chain is one `GroupArena` group, role r passing
to role r+1 and the last back to role 0, which starts with the token. Each
hop is measured from the waker's side: it stores `time.monotonic_ns()` in the
chain's stamp just before the wake; the wakee, back from a real sleep, records
`now - stamp` as one wake-to-run sample. Only one token circulates, so one
stamp per chain is enough. A wait that found the token already there is not a
wakeup and is not sampled; a token that lands after the wakee found its pipe
empty but before `poll` put it to sleep (or a futex wake before it reached
`schedule()`) is sampled, short and without a context switch, so a chain's
sample count can exceed its voluntary switches a little.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import select
import tempfile
import time
from dataclasses import dataclass, field

from ktstr.errors import ConfigError
from ktstr.validators import count, seconds
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop
from ktstr.work.pairing import MAX_GROUP_SIZE, GroupArena, Seat, group_key
from ktstr.work.wake import WAIT_SLICE_S, futex_wait, futex_wake


class WakeMechanism(enum.Enum):
    """How a `WakeChain` hop wakes the next stage."""

    #: A 1-byte FIFO write: the pipe's `WF_SYNC` wakeup.
    PIPE = "pipe"
    #: A futex word per stage and `FUTEX_WAKE`: no `WF_SYNC`.
    FUTEX = "futex"


WAKE_CHAIN_DEPTH = 4
WAKE_CHAIN_WAKE = WakeMechanism.PIPE
#: Seconds of work units per hop.
WAKE_CHAIN_WORK_PER_HOP = 0.0002


def _mechanism(value: object) -> WakeMechanism:
    if isinstance(value, WakeMechanism):
        return value
    if isinstance(value, str):
        for m in WakeMechanism:
            if value.lower() in (m.value, m.name.lower()):
                return m
    raise ConfigError(
        f"WakeChain wake = {value!r} is not a wake mechanism; hint: pass "
        "WakeMechanism.PIPE or WakeMechanism.FUTEX (or 'pipe' / 'futex')")


@dataclass(frozen=True, slots=True, init=False)
class WakeChain(WorkType):
    """A token ring of `depth` workers; hops wake by `wake`, each after
    `work_per_hop` seconds of work."""

    depth: int
    wake: WakeMechanism
    work_per_hop: float
    _arena: GroupArena = field(init=False, compare=False, repr=False, hash=False)
    _tag: str = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self, depth: int = WAKE_CHAIN_DEPTH,
                 wake: WakeMechanism | str = WAKE_CHAIN_WAKE,
                 work_per_hop: float = WAKE_CHAIN_WORK_PER_HOP) -> None:
        depth = count(depth, "WakeChain depth", minimum=2)
        if depth > MAX_GROUP_SIZE:
            raise ConfigError(f"WakeChain depth = {depth} is too deep; hint: at most "
                              f"{MAX_GROUP_SIZE} stages per chain")
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "wake", _mechanism(wake))
        object.__setattr__(self, "work_per_hop", seconds(work_per_hop, "WakeChain work_per_hop"))
        object.__setattr__(self, "_arena", GroupArena(depth, words=depth, stamps=1))
        object.__setattr__(self, "_tag", f"{os.getpid()}-{id(self):x}")

    def run(self, loop: WorkLoop) -> None:
        if self.wake is WakeMechanism.PIPE:
            self._run_pipe(loop)
        else:
            self._run_futex(loop)

    # -- futex ring ----------------------------------------------------------------

    def _run_futex(self, loop: WorkLoop) -> None:
        arena = self._arena

        def first_token(seat: Seat) -> None:  # under the lock: a new chain starts at 0
            if seat.role == 0 and arena.present(seat) == 1:
                arena.word(seat, 0).value = 1

        with arena.seat(group_key(), on_seat=first_token) as seat:
            loop.metrics["group_role"] = seat.role
            mine, succ = arena.word(seat, seat.role), arena.word(seat, seat.partner)
            mine_addr, succ_addr = ctypes.addressof(mine), ctypes.addressof(succ)
            stamp = arena.stamp_cell(seat)
            while loop.running:
                woken = False
                while mine.value == 0:
                    if not loop.running:
                        return
                    woken = futex_wait(mine_addr, 0, WAIT_SLICE_S) == 0
                now = time.monotonic_ns()
                mine.value = 0
                loop.resume_after_wait(now - stamp.value if woken else None, now=now)
                loop.spin_for(self.work_per_hop)
                loop.iterations += 1
                stamp.value = time.monotonic_ns()
                succ.value = 1
                futex_wake(succ_addr)

    # -- pipe ring -----------------------------------------------------------------

    def _fifo(self, seat: Seat, stage: int) -> str:
        """The FIFO that carries the token to `stage` of `seat`'s chain."""
        return os.path.join(tempfile.gettempdir(),
                            f"ktstr-chain-{self._tag}-{seat.slot}-{seat.generation}.{stage}")

    def _unlink(self, seat: Seat) -> None:
        for stage in range(self.depth):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._fifo(seat, stage))

    def _run_pipe(self, loop: WorkLoop) -> None:
        arena = self._arena
        fds: list[int] = []
        starts = [False]

        def open_pipes(seat: Seat) -> None:  # under the arena lock
            if seat.role == 0 and arena.present(seat) == 1:  # a new chain
                for stage in range(self.depth):
                    os.mkfifo(self._fifo(seat, stage), 0o600)
                starts[0] = True
            # O_RDWR: the open does not wait for the other end (Linux).
            for stage in (seat.role, seat.partner):
                fds.append(os.open(self._fifo(seat, stage),
                                   os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC))
            if arena.present(seat) == self.depth:  # everyone holds their ends now
                self._unlink(seat)

        try:
            with arena.seat(group_key(), on_seat=open_pipes, on_leave=self._unlink) as seat:
                loop.metrics["group_role"] = seat.role
                rfd, wfd = fds
                stamp = arena.stamp_cell(seat)
                poller = select.poll()
                poller.register(rfd, select.POLLIN)
                buf = [bytearray(1)]
                token = b"t"
                holding = starts[0]
                while holding or self._await_token(loop, rfd, poller, buf, stamp):
                    holding = False
                    loop.spin_for(self.work_per_hop)
                    loop.iterations += 1
                    stamp.value = time.monotonic_ns()
                    os.write(wfd, token)
        finally:
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _await_token(loop: WorkLoop, rfd: int, poller: select.poll, buf: list[bytearray],
                     stamp: ctypes.c_int64) -> bool:
        """Read the token (True), sleeping for it; False once stopped."""
        with contextlib.suppress(BlockingIOError):
            if os.readv(rfd, buf):
                return loop.running  # already there: no sleep, no wakeup to time
        while loop.running:
            if not poller.poll(WAIT_SLICE_S * 1e3):
                continue
            now = time.monotonic_ns()
            try:
                got = os.readv(rfd, buf)
            except BlockingIOError:
                continue
            if got:
                loop.resume_after_wait(now - stamp.value, now=now)
                return True
        return False
