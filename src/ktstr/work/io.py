"""Block-I/O work types (seed 002, "Block I/O").

- `IoSyncWrite`: striped 4 KiB `pwrite`s through an `O_SYNC` descriptor, each
  followed by `fdatasync`: every write blocks the worker in D state until the
  device has it. One write is one work unit.

The seed writes to `/dev/vda` when the guest has one; here every worker writes
its own temporary file (created with `tempfile` in the default temp directory,
`/tmp`, and unlinked at once so nothing is left behind), which works the same
on the host, in a guest without a scratch disk, and never clobbers a device.
On a tmpfs `/tmp` the sync is a no-op and the worker never leaves the CPU for
the disk: mount a disk there for real D-state cycles.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop

IO_BLOCK_BYTES = 4096
#: Stripes per file: writes walk 4 KiB blocks of a 1 MiB file and wrap around.
IO_SYNC_WRITE_STRIPES = 256


@dataclass(frozen=True, slots=True)
class IoSyncWrite(WorkType):
    """O_SYNC 4 KiB pwrite + fdatasync to a per-worker temp file, striped."""

    def run(self, loop: WorkLoop) -> None:
        fd, path = tempfile.mkstemp(prefix="ktstr-iosync-")
        os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_SYNC | os.O_CLOEXEC)
        os.unlink(path)
        block = os.urandom(IO_BLOCK_BYTES)
        stripe = 0
        try:
            while loop.running:
                os.pwrite(fd, block, stripe * IO_BLOCK_BYTES)
                os.fdatasync(fd)
                stripe = (stripe + 1) % IO_SYNC_WRITE_STRIPES
                loop.spin()
                loop.iterations += 1
        finally:
            os.close(fd)
