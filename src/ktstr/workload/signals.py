"""Cross-process signalling between a `WorkloadHandle` and its forked workers.

- `Gate`: a one-shot broadcast on an eventfd. `open()` writes the counter once;
  nobody reads it, so it stays readable and every waiter in every process wakes
  (poll/select), now or later. Unlike a pipe closed to signal EOF, a copy of
  the fd inherited by an unrelated fork cannot hold the gate shut.
- `SharedBlock`: an anonymous `MAP_SHARED` mapping created before the forks:
  byte 0 is the stop flag, then one int32 per worker for the pid table
  (`WorkerCtx.sibling_pids`).
- `StopFlag`: the stop request as workers see it (`ktstr.work.StopSignal`): the
  shared byte is the cheap check made once per work unit; the gate lets a
  sleeping worker wake as soon as stop is set instead of polling.
"""

from __future__ import annotations

import mmap
import os
import select
import struct

#: select(2) takes fds below FD_SETSIZE (1024 on Linux); poll(2) the rest.
_FD_SETSIZE = 1024
_PID = struct.Struct("=i")
_PIDS_OFFSET = 8


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Whether `fd` is readable within `timeout` seconds (None: wait forever).

    select(2) for its microsecond timeout (a stop-aware sleep should not round
    to milliseconds); poll(2) for fds select cannot take.
    """
    if timeout is not None and timeout < 0:
        timeout = 0.0
    if fd < _FD_SETSIZE:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000.0))


class Gate:
    """Closed until `open()`; then open for good, in every process sharing the fd."""

    __slots__ = ("fd",)

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)

    def open(self) -> None:
        os.eventfd_write(self.fd, 1)

    def is_open(self) -> bool:
        return wait_readable(self.fd, 0.0)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until open or `timeout` seconds pass; True if open."""
        return wait_readable(self.fd, timeout)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class SharedBlock:
    """Memory shared by the parent and its workers: stop byte and pid table."""

    __slots__ = ("mm", "slots")

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.mm = mmap.mmap(-1, max(mmap.PAGESIZE, _PIDS_OFFSET + _PID.size * slots),
                            flags=mmap.MAP_SHARED)

    def set_pid(self, index: int, pid: int) -> None:
        _PID.pack_into(self.mm, _PIDS_OFFSET + _PID.size * index, pid)

    def pids(self) -> tuple[int, ...]:
        """The pid of every worker recorded so far (0 for empty slots)."""
        return tuple(_PID.unpack_from(self.mm, _PIDS_OFFSET + _PID.size * i)[0]
                     for i in range(self.slots))

    def close(self) -> None:
        if not self.mm.closed:
            self.mm.close()


class StopFlag:
    """The stop request: set once by the parent, seen by every worker."""

    __slots__ = ("_gate", "_mm")

    def __init__(self, block: SharedBlock, gate: Gate) -> None:
        self._mm = block.mm
        self._gate = gate

    def is_set(self) -> bool:
        return self._mm[0] != 0

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until stop is set or `timeout` seconds pass; True if stop is set."""
        if self.is_set():
            return True
        self._gate.wait(timeout)
        return self.is_set()

    def set(self) -> None:
        self._mm[0] = 1
        self._gate.open()

    def close(self) -> None:
        """Close the gate's fd (the parent, once every worker is reaped)."""
        self._gate.close()
