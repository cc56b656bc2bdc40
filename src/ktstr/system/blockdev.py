"""The scratch disk: finding it under /sys/block and sharing it out between workers.

Every ktstr VM gets a virtio-blk disk whose serial is `SCRATCH_SERIAL`
(ktstr.vm.qemu.QemuArgs.scratch_disk), a raw device with no file system, for
the block-I/O work types. `find_scratch_disk` looks for it by that serial in
`/sys/block/*/serial` (virtio-blk exposes the serial qemu was given), never by
assuming a name such as `vda`: the guest may have other disks, and the kernel
names them in probe order. `block_stat` reads the device's own I/O counters
(`/sys/block/<dev>/stat`, Documentation/block/stat.rst).

Workers of several cgroups may do I/O at the same time, each spawned by its own
handle, so no worker index is unique across them. `claim_region` hands each
caller a disjoint `REGION_BYTES` slice of the disk instead: region `i` is held
by an open-file-description lock (`F_OFD_SETLK`) on byte `i` of a lock file in
`LOCK_DIR`. The kernel drops the lock when the holder closes it or dies, so a
crashed worker never leaks its region, and OFD locks (unlike `lockf`'s
per-process ones) conflict between two claims of one process too. A host
without the disk (`ktstr test --host`) simply finds none.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ktstr.system import fs

SYS_ROOT = Path("/sys")
DEV_ROOT = Path("/dev")
#: The virtio-blk serial qemu gives the scratch disk (at most 20 bytes: VIRTIO_BLK_ID_BYTES).
SCRATCH_SERIAL = "ktstr-scratch"
#: One worker's slice: IoConvoy's 4 MiB write cursor fits, and a 256 MiB disk has 64.
REGION_BYTES = 4 << 20
#: Where the region locks live: a tmpfs in the guest, shared by every worker.
LOCK_DIR = Path("/dev/shm")
SECTOR_BYTES = 512  # /sys/block/<dev>/size and stat count 512-byte sectors, whatever the device

#: /sys/block/<dev>/stat fields, in order (Documentation/block/stat.rst).
STAT_FIELDS = ("read_ios", "read_merges", "read_sectors", "read_ticks",
               "write_ios", "write_merges", "write_sectors", "write_ticks",
               "in_flight", "io_ticks", "time_in_queue",
               "discard_ios", "discard_merges", "discard_sectors", "discard_ticks",
               "flush_ios", "flush_ticks")


@dataclass(frozen=True, slots=True)
class ScratchDisk:
    """The scratch block device: its kernel name (`vda`), node and size in bytes."""

    name: str
    path: Path
    size: int


def find_scratch_disk(serial: str = SCRATCH_SERIAL, sys_root: Path = SYS_ROOT,
                      dev_root: Path = DEV_ROOT) -> ScratchDisk | None:
    """The block device whose serial is `serial`, or None (no such disk here)."""
    block = sys_root / "block"
    try:
        names = sorted(os.listdir(block))
    except OSError:
        return None
    for name in names:
        found = fs.read_optional(block / name / "serial")
        if found is not None and found.strip() == serial:
            size = fs.read_int(block / name / "size") * SECTOR_BYTES
            return ScratchDisk(name, dev_root / name, size)
    return None


def block_stat(name: str, sys_root: Path = SYS_ROOT) -> dict[str, int]:
    """The counters of `/sys/block/<name>/stat` by name (older kernels print fewer)."""
    values = fs.read_text(sys_root / "block" / name / "stat").split()
    return {key: int(v) for key, v in zip(STAT_FIELDS, values, strict=False)}


@dataclass(frozen=True, slots=True)
class Region:
    """A slice of the scratch disk held by one worker until `release` (or its exit)."""

    disk: ScratchDisk
    index: int
    offset: int  # bytes from the start of the device
    size: int  # bytes
    lock_fd: int

    def release(self) -> None:
        try:
            os.close(self.lock_fd)
        except OSError as e:
            if e.errno != errno.EBADF:
                raise


def region_count(disk_size: int, region_bytes: int = REGION_BYTES) -> int:
    return disk_size // region_bytes


def region_bounds(index: int, region_bytes: int = REGION_BYTES) -> tuple[int, int]:
    """(offset, size) of region `index`: regions tile the disk from offset 0, never overlap."""
    return index * region_bytes, region_bytes


# struct flock on Linux (x86_64, arm64): short l_type, short l_whence, off_t l_start,
# off_t l_len, pid_t l_pid (0 for OFD locks), padded to 32 bytes.
_FLOCK = struct.Struct("hhqqi4x")


def _try_lock_byte(fd: int, index: int) -> bool:
    arg = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, index, 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, arg)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def claim_region(disk: ScratchDisk, lock_dir: Path = LOCK_DIR,
                 region_bytes: int = REGION_BYTES) -> Region | None:
    """The first free region of `disk`, locked for the caller; None when all are taken.

    Lowest index first, so a few workers stay at the start of the disk.
    """
    count = region_count(disk.size, region_bytes)
    if count == 0:
        return None
    path = lock_dir / f"ktstr-scratch-{disk.name}.regions"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        for index in range(count):
            if _try_lock_byte(fd, index):
                offset, size = region_bounds(index, region_bytes)
                return Region(disk, index, offset, size, fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None
