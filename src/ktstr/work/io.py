"""Block-I/O work types.

Each worker does its I/O in its own region of the VM's scratch disk (a raw
virtio-blk device found by its serial, see ktstr.system.blockdev; regions
never overlap, so workers of several cgroups can write at once), through the
guest's block layer down to qemu, which opens the host file `cache=none`: the
waits are real device waits, in D state.

- `IoSyncWrite`: striped 4 KiB `pwrite`s through an `O_DIRECT | O_SYNC`
  descriptor, each followed by `fdatasync` (a cache flush to the device):
  every write blocks the worker until the device has it. One write is one
  work unit.
- `IoRandRead`: 4 KiB `O_DIRECT` `pread`s at random aligned offsets of the
  region: many short D-state waits (high IOPS), no page cache in between.
  `IoRandRead(path)` reads that block device or existing file instead.
- `IoConvoy`: a sequential 4 KiB buffered write at a cursor walking the
  region, then a 4 KiB `O_DIRECT` read at a random block already written, and
  an `fdatasync` every `IO_CONVOY_SYNC_EVERY` writes: the sync waits behind
  the dirty pages (a writeback convoy), and a direct read of a still-dirty
  block waits for its writeback first. One write+read pair is one work unit.
  Metrics: `write_bytes`, `read_bytes`, `syncs`.

Without the scratch disk (a host run, `ktstr shell --disk-mb 0`, every region
taken) each type falls back to a per-worker temp file (created with `tempfile`
in the default temp directory and unlinked at once, so nothing is left
behind): `IoRandRead` reads an `IO_RAND_READ_FILE_MIB` MiB file `O_DIRECT`
(buffered after `posix_fadvise(POSIX_FADV_DONTNEED)` of each block where the
filesystem refuses `O_DIRECT`), the writing types write theirs `O_SYNC`. On a
memory-backed `/tmp` (a ktstr guest's is an overlay on memory) the sync is a
no-op and the worker never leaves the CPU for a device. Every fallback says so
in the worker's notes, naming why and the filesystem.
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
from ktstr.system.blockdev import (
    SCRATCH_SERIAL,
    Region,
    claim_region,
    find_scratch_disk,
    region_count,
)
from ktstr.system.mounts import mount_fstype
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop

IO_BLOCK_BYTES = 4096
#: Stripes per worker: writes walk 4 KiB blocks of 1 MiB and wrap around.
IO_SYNC_WRITE_STRIPES = 256
#: Size of IoRandRead's fallback file, 256 blocks: O_DIRECT reads bypass the page
#: cache whatever the size, and filling a bigger file costs a second or more of a
#: short run under emulation.
IO_RAND_READ_FILE_MIB = 1
#: Size of IoConvoy's fallback file: the write cursor wraps around after this much.
IO_CONVOY_FILE_MIB = 4
#: IoConvoy writes between two fdatasyncs.
IO_CONVOY_SYNC_EVERY = 16


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


def aligned_block(fill: bytes = b"") -> mmap.mmap:
    """One page-aligned 4 KiB buffer (what O_DIRECT needs), holding `fill` if given."""
    buf = mmap.mmap(-1, IO_BLOCK_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.write(fill[:IO_BLOCK_BYTES])
    return buf


@dataclass(frozen=True, slots=True)
class Target:
    """Where one worker's I/O goes: `blocks` 4 KiB blocks of `fd` from byte `base`,
    in its `region` of the scratch disk (None for a temp file or a given path)."""

    fd: int
    base: int
    blocks: int
    region: Region | None = None

    def close(self) -> None:
        os.close(self.fd)
        if self.region is not None:
            self.region.release()


def disk_target(loop: WorkLoop, flags: int, instead: str) -> Target | None:
    """A free region of the scratch disk, the disk opened with `flags`; None (with a
    note saying why and that `instead` happens) when there is no usable region."""
    disk = find_scratch_disk()
    if disk is None:
        loop.note(f"no scratch disk (no block device with serial {SCRATCH_SERIAL}): {instead}")
        return None
    region = claim_region(disk)
    if region is None:
        loop.note(f"all {region_count(disk.size)} regions of the scratch disk {disk.path} "
                  f"are held by other workers: {instead}")
        return None
    try:
        fd = os.open(disk.path, flags | os.O_CLOEXEC)
    except OSError as e:
        region.release()
        loop.note(f"scratch disk {disk.path} cannot be opened ({e.strerror}): {instead}")
        return None
    return Target(fd, region.offset, region.size // IO_BLOCK_BYTES, region)


def sync_write_target(loop: WorkLoop, what: str) -> Target:
    """`what`'s O_SYNC 4 KiB writes: O_DIRECT to a disk region, else to a temp file."""
    where = tempfile.gettempdir()
    instead = f"{what} writes a temp file on {mount_fstype(where)} ({where})"
    disk = disk_target(loop, os.O_WRONLY | os.O_DIRECT | os.O_SYNC, instead)
    if disk is not None:
        return Target(disk.fd, disk.base, min(disk.blocks, IO_SYNC_WRITE_STRIPES), disk.region)
    fd, path = tempfile.mkstemp(prefix="ktstr-iosync-")
    os.close(fd)
    fd = os.open(path, os.O_WRONLY | os.O_SYNC | os.O_CLOEXEC)
    os.unlink(path)
    return Target(fd, 0, IO_SYNC_WRITE_STRIPES)


def open_rand_read_target(loop: WorkLoop, path: str | None = None) -> tuple[Target, bool]:
    """IoRandRead's target and whether its reads are O_DIRECT: `path` when given,
    else a scratch disk region, else an O_DIRECT temp file, else a buffered one."""
    if path is not None:
        return _open_given(loop, path)
    size = IO_RAND_READ_FILE_MIB << 20
    where = tempfile.gettempdir()
    kind = mount_fstype(where)
    instead = f"O_DIRECT reads of a {IO_RAND_READ_FILE_MIB} MiB temp file on {kind} ({where})"
    disk = disk_target(loop, os.O_RDONLY | os.O_DIRECT, instead)
    if disk is not None:
        return disk, True
    try:
        fd = scratch_file("ktstr-randread-", size, os.O_RDONLY | os.O_DIRECT)
        return Target(fd, 0, size // IO_BLOCK_BYTES), True
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    loop.note(f"{kind} ({where}) refuses O_DIRECT: buffered reads after "
              "posix_fadvise(DONTNEED)")
    fd = scratch_file("ktstr-randread-", size, os.O_RDONLY)
    return Target(fd, 0, size // IO_BLOCK_BYTES), False


@dataclass(frozen=True, slots=True)
class IoSyncWrite(WorkType):
    """O_DIRECT | O_SYNC 4 KiB pwrite + fdatasync, striped over the worker's region."""

    def run(self, loop: WorkLoop) -> None:
        target = sync_write_target(loop, "IoSyncWrite")
        buf = aligned_block(os.urandom(IO_BLOCK_BYTES))
        bufs = [buf]
        stripe = 0
        try:
            while loop.running:
                os.pwritev(target.fd, bufs, target.base + stripe * IO_BLOCK_BYTES)
                os.fdatasync(target.fd)
                stripe = (stripe + 1) % target.blocks
                loop.spin()
                loop.iterations += 1
        finally:
            target.close()
            buf.close()


def _open_given(loop: WorkLoop, path: str) -> tuple[Target, bool]:
    """Open the caller's `path` read-only, O_DIRECT if its filesystem takes it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ConfigError(
            f"IoRandRead path = {path!r} cannot be read here ({e.strerror}); hint: name a "
            "block device or a file of at least 4 KiB that exists where the workers run, "
            "or leave path unset for the scratch disk") from None
    kind = "block device" if stat.S_ISBLK(mode) else f"file on {mount_fstype(path)}"
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
    return Target(fd, 0, blocks), direct


@dataclass(frozen=True, slots=True, init=False)
class IoRandRead(WorkType):
    """4 KiB O_DIRECT preads at random offsets: one read is one work unit.

    `path` names what to read instead of the worker's scratch disk region: a
    block device or an existing file, opened read-only and never written, e.g.
    a file on a network or virtio filesystem whose reads block.
    """

    path: str | None

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is not None and not (isinstance(path, str | os.PathLike) and os.fspath(path)):
            raise ConfigError(f"IoRandRead path = {path!r} is not a path; hint: pass a "
                              "string such as '/dev/vdb', or None for the default")
        object.__setattr__(self, "path", None if path is None else os.fspath(path))

    def run(self, loop: WorkLoop) -> None:
        target, direct = open_rand_read_target(loop, self.path)
        fd, base = target.fd, target.base
        buf = aligned_block()
        bufs = [buf]
        rng = random.Random(os.getpid())
        dontneed = os.POSIX_FADV_DONTNEED
        reads = 0
        try:
            while loop.running:
                off = base + rng.randrange(target.blocks) * IO_BLOCK_BYTES
                if not direct:
                    os.posix_fadvise(fd, off, IO_BLOCK_BYTES, dontneed)
                os.preadv(fd, bufs, off)
                reads += 1
                loop.spin()
                loop.iterations += 1
        finally:
            target.close()
            buf.close()
            loop.metrics["reads"] = float(reads)
            loop.metrics["read_bytes"] = float(reads * IO_BLOCK_BYTES)


def convoy_targets(loop: WorkLoop) -> tuple[Target, int]:
    """IoConvoy's buffered write target and a second, O_DIRECT if possible, read fd on it."""
    where = tempfile.gettempdir()
    kind = mount_fstype(where)
    disk = disk_target(loop, os.O_RDWR, f"the convoy runs on a temp file on {kind} ({where})")
    if disk is not None:
        assert disk.region is not None
        try:
            return disk, os.open(disk.region.disk.path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
        except BaseException:
            disk.close()
            raise
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
    return Target(fd, 0, (IO_CONVOY_FILE_MIB << 20) // IO_BLOCK_BYTES), rfd


@dataclass(frozen=True, slots=True)
class IoConvoy(WorkType):
    """Sequential 4 KiB buffered writes interleaved with random 4 KiB O_DIRECT reads,
    fdatasync every `IO_CONVOY_SYNC_EVERY` writes; one write+read pair is one work unit."""

    def run(self, loop: WorkLoop) -> None:
        target, rfd = convoy_targets(loop)
        fd, base, blocks = target.fd, target.base, target.blocks
        block = os.urandom(IO_BLOCK_BYTES)
        rbuf = aligned_block()
        rbufs = [rbuf]
        rng = random.Random(os.getpid())
        cursor = written = reads = syncs = 0
        try:
            while loop.running:
                os.pwrite(fd, block, base + cursor * IO_BLOCK_BYTES)
                written += 1
                cursor = (cursor + 1) % blocks
                if written % IO_CONVOY_SYNC_EVERY == 0:
                    os.fdatasync(fd)
                    syncs += 1
                high = min(written, blocks)
                os.preadv(rfd, rbufs, base + rng.randrange(high) * IO_BLOCK_BYTES)
                reads += 1
                loop.spin()
                loop.iterations += 1
        finally:
            os.close(rfd)
            target.close()
            rbuf.close()
            loop.metrics["write_bytes"] = float(written * IO_BLOCK_BYTES)
            loop.metrics["read_bytes"] = float(reads * IO_BLOCK_BYTES)
            loop.metrics["syncs"] = float(syncs)
