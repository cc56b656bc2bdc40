"""Block-I/O work types (seed 002, "Block I/O").

- `IoSyncWrite`: striped 4 KiB `pwrite`s through an `O_SYNC` descriptor, each
  followed by `fdatasync`: every write blocks the worker in D state until the
  device has it. One write is one work unit.
- `IoRandRead`: 4 KiB `O_DIRECT` `pread`s at random aligned offsets: many
  short D-state waits (high IOPS), no page cache in between. Reads `IO_DEVICE`
  (`/dev/vda`, read-only) when the guest has it; otherwise a per-worker
  `IO_RAND_READ_FILE_MIB` MiB temp file opened `O_DIRECT`; on a filesystem that
  refuses `O_DIRECT`, buffered reads each preceded by
  `posix_fadvise(POSIX_FADV_DONTNEED)` of that block, so each read must go
  below the page cache again. Which one ran is in the worker's notes.
  `IoRandRead(path)` reads that block device or existing file instead.
- `IoConvoy`: per worker, a sequential 4 KiB write at a cursor walking an
  `IO_CONVOY_FILE_MIB` MiB temp file, then a 4 KiB `O_DIRECT` read (buffered,
  with a note, where the filesystem refuses it) at a random block already
  written, and an `fdatasync` every `IO_CONVOY_SYNC_EVERY` writes: the sync
  waits behind the dirty pages (a writeback convoy), and a direct read of a
  still-dirty block waits for its writeback first. One write+read pair is one
  work unit. Metrics: `write_bytes`, `read_bytes`, `syncs`.

The seed writes to `/dev/vda` when the guest has one; here the writing types
(`IoSyncWrite`, `IoConvoy`, Sequence's `Io` phase) always write their own
temporary file (created with `tempfile` in the default temp directory, `/tmp`,
and unlinked at once so nothing is left behind), which works the same on the
host, in a guest without a scratch disk, and never clobbers a device; only
`IoRandRead` touches the device, read-only. On a memory-backed `/tmp` (the
ktstr guest's is an overlay on memory: no disk at all) the sync is a no-op and
the worker never leaves the CPU for a device: mount a disk there for real
D-state cycles. Every type whose I/O does not reach a block device says so in
its notes, naming the filesystem.
"""

from __future__ import annotations

import errno
import mmap
import os
import random
import stat
import tempfile
from dataclasses import dataclass

from ktstr.errors import ConfigError
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop

IO_BLOCK_BYTES = 4096
#: Stripes per file: writes walk 4 KiB blocks of a 1 MiB file and wrap around.
IO_SYNC_WRITE_STRIPES = 256
#: The block device the seed reads from when the guest has one.
IO_DEVICE = "/dev/vda"
#: Size of IoRandRead's fallback file, 256 blocks: O_DIRECT reads bypass the page
#: cache whatever the size, and filling a bigger file costs a second or more of a
#: short run under emulation.
IO_RAND_READ_FILE_MIB = 1
#: Size of IoConvoy's file: the write cursor wraps around after this much.
IO_CONVOY_FILE_MIB = 4
#: IoConvoy writes between two fdatasyncs.
IO_CONVOY_SYNC_EVERY = 16


def fs_type(path: str, mountinfo: str | None = None) -> str:
    """The filesystem type of the mount holding `path` (from /proc/self/mountinfo)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mountinfo = f.read()
    path = os.path.realpath(path)
    best, kind = "", "unknown"
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, line.split(" - ", 1)[1].split()[0]
    return kind


def scratch_file(prefix: str, size: int, flags: int) -> int:
    """A per-worker temp file of `size` bytes (every block written, no holes), already
    unlinked, reopened with `flags`; raises OSError (EINVAL) when the fs refuses them.

    One random 4 KiB block repeated: drawing megabytes from the CSPRNG costs
    seconds of CPU under emulation, and the reads never look at the bytes."""
    fd, path = tempfile.mkstemp(prefix=prefix)
    try:
        chunk = memoryview(os.urandom(IO_BLOCK_BYTES) * 256)
        done = 0
        while done < size:
            done += os.write(fd, chunk[:size - done])
        os.fsync(fd)
        return os.open(path, flags | os.O_CLOEXEC)
    finally:
        os.close(fd)
        os.unlink(path)


def aligned_block() -> mmap.mmap:
    """One page-aligned 4 KiB buffer: what O_DIRECT needs from a read buffer."""
    return mmap.mmap(-1, IO_BLOCK_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def open_rand_read_target(loop: WorkLoop, path: str | None = None) -> tuple[int, int, bool]:
    """IoRandRead's target: (fd, blocks, direct). `path` when given, else the device
    when readable, else a temp file with O_DIRECT, else a buffered temp file; notes
    say which (except for a block device read with O_DIRECT: the seed's case)."""
    if path is not None:
        return _open_given(loop, path)
    try:
        if stat.S_ISBLK(os.stat(IO_DEVICE).st_mode):
            fd = os.open(IO_DEVICE, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
            blocks = os.lseek(fd, 0, os.SEEK_END) // IO_BLOCK_BYTES
            if blocks > 0:
                return fd, blocks, True
            os.close(fd)
            loop.note(f"{IO_DEVICE} is empty: reading a temp file instead")
    except FileNotFoundError:
        pass
    except OSError as e:
        loop.note(f"{IO_DEVICE} not readable with O_DIRECT ({e.strerror}): "
                  "reading a temp file instead")
    size = IO_RAND_READ_FILE_MIB << 20
    where = tempfile.gettempdir()
    kind = fs_type(where)
    try:
        fd = scratch_file("ktstr-randread-", size, os.O_RDONLY | os.O_DIRECT)
        loop.note(f"no block device {IO_DEVICE}: O_DIRECT reads of a "
                  f"{IO_RAND_READ_FILE_MIB} MiB temp file on {kind} ({where})")
        return fd, size // IO_BLOCK_BYTES, True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    loop.note(f"no block device {IO_DEVICE} and {kind} ({where}) refuses O_DIRECT: "
              "buffered reads after posix_fadvise(DONTNEED)")
    return scratch_file("ktstr-randread-", size, os.O_RDONLY), size // IO_BLOCK_BYTES, False


@dataclass(frozen=True, slots=True)
class IoSyncWrite(WorkType):
    """O_SYNC 4 KiB pwrite + fdatasync to a per-worker temp file, striped."""

    def run(self, loop: WorkLoop) -> None:
        where = tempfile.gettempdir()
        loop.note(f"no block device: O_SYNC writes go to a temp file on {fs_type(where)} "
                  f"({where})")
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


def _open_given(loop: WorkLoop, path: str) -> tuple[int, int, bool]:
    """Open the caller's `path` read-only, O_DIRECT if its filesystem takes it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ConfigError(
            f"IoRandRead path = {path!r} cannot be read here ({e.strerror}); hint: name a "
            "block device or a file of at least 4 KiB that exists where the workers run, "
            "or leave path unset for /dev/vda or a temp file") from None
    kind = "block device" if stat.S_ISBLK(mode) else f"file on {fs_type(path)}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        direct = True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        direct = False
        loop.note(f"{path} ({kind}) refuses O_DIRECT: buffered reads after "
                  "posix_fadvise(DONTNEED)")
    blocks = os.lseek(fd, 0, os.SEEK_END) // IO_BLOCK_BYTES
    if blocks == 0:
        os.close(fd)
        raise ConfigError(f"IoRandRead path = {path!r} is smaller than one 4 KiB block; "
                          "hint: name a bigger file or a block device")
    if direct and not stat.S_ISBLK(mode):
        loop.note(f"{path} is not a block device: O_DIRECT reads of a {kind}")
    return fd, blocks, direct


@dataclass(frozen=True, slots=True, init=False)
class IoRandRead(WorkType):
    """4 KiB O_DIRECT preads at random offsets: one read is one work unit.

    `path` names what to read instead of the default (`/dev/vda`, else a temp
    file): a block device or an existing file, opened read-only and never
    written, e.g. a file on a network or virtio filesystem whose reads block.
    """

    path: str | None

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is not None and not (isinstance(path, str | os.PathLike) and os.fspath(path)):
            raise ConfigError(f"IoRandRead path = {path!r} is not a path; hint: pass a "
                              "string such as '/dev/vdb', or None for the default")
        object.__setattr__(self, "path", None if path is None else os.fspath(path))

    def run(self, loop: WorkLoop) -> None:
        fd, blocks, direct = open_rand_read_target(loop, self.path)
        buf = aligned_block()
        bufs = [buf]
        rng = random.Random(os.getpid())
        dontneed = os.POSIX_FADV_DONTNEED
        reads = 0
        try:
            while loop.running:
                off = rng.randrange(blocks) * IO_BLOCK_BYTES
                if not direct:
                    os.posix_fadvise(fd, off, IO_BLOCK_BYTES, dontneed)
                os.preadv(fd, bufs, off)
                reads += 1
                loop.spin()
                loop.iterations += 1
        finally:
            os.close(fd)
            buf.close()
            loop.metrics["reads"] = float(reads)
            loop.metrics["read_bytes"] = float(reads * IO_BLOCK_BYTES)


@dataclass(frozen=True, slots=True)
class IoConvoy(WorkType):
    """Sequential 4 KiB writes interleaved with random 4 KiB O_DIRECT reads, fdatasync
    every `IO_CONVOY_SYNC_EVERY` writes; one write+read pair is one work unit."""

    def run(self, loop: WorkLoop) -> None:
        where = tempfile.gettempdir()
        kind = fs_type(where)
        loop.note(f"no block device: the convoy runs on a temp file on {kind} ({where})")
        fd, path = tempfile.mkstemp(prefix="ktstr-convoy-")
        os.close(fd)
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            # Reads bypass the page cache: a direct read of a range still dirty waits
            # for its writeback first, so the reads queue behind the writes.
            rfd = os.open(path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            rfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            loop.note(f"{kind} ({where}) refuses O_DIRECT: the convoy's reads are buffered")
        finally:
            os.unlink(path)
        blocks = (IO_CONVOY_FILE_MIB << 20) // IO_BLOCK_BYTES
        block = os.urandom(IO_BLOCK_BYTES)
        rbuf = aligned_block()
        rbufs = [rbuf]
        rng = random.Random(os.getpid())
        cursor = written = reads = syncs = 0
        try:
            while loop.running:
                os.pwrite(fd, block, cursor * IO_BLOCK_BYTES)
                written += 1
                cursor = (cursor + 1) % blocks
                if written % IO_CONVOY_SYNC_EVERY == 0:
                    os.fdatasync(fd)
                    syncs += 1
                high = min(written, blocks)
                os.preadv(rfd, rbufs, rng.randrange(high) * IO_BLOCK_BYTES)
                reads += 1
                loop.spin()
                loop.iterations += 1
        finally:
            os.close(fd)
            os.close(rfd)
            rbuf.close()
            loop.metrics["write_bytes"] = float(written * IO_BLOCK_BYTES)
            loop.metrics["read_bytes"] = float(reads * IO_BLOCK_BYTES)
            loop.metrics["syncs"] = float(syncs)
