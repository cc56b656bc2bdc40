"""Guest RAM as the host sees it: the qemu memory-backend files, mapped read-write.

Each NUMA node's RAM is a file on /dev/shm (ktstr.vm.qemu.QemuArgs.topology) that qemu
maps shared, so a store here is seen by the guest at once and a load sees the guest's
latest store (TCG caches translated code, not data: never patch kernel text this way).
The machine unlinks the names once qemu has mapped them and keeps one fd per node
(`Machine.memory_fds`), which is what `GuestMemory.from_fds` takes.

Guest-physical layout (qemu's q35): the node backends are concatenated into one RAM
block in node order; the block is mapped at guest-physical 0 up to `lowmem`, and the
rest above 4 GiB. `lowmem` is all of RAM below 2.75 GiB, else 2 GiB (hw/i386/pc_q35.c).
"""

from __future__ import annotations

import bisect
import mmap
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ktstr.errors import MonitorUnavailable

FOUR_GIB = 1 << 32
Q35_LOWMEM_SPLIT = 0xB0000000  # RAM of at least this much puts only 2 GiB below 4 GiB
Q35_LOWMEM = 0x80000000


@dataclass(frozen=True, slots=True)
class Region:
    """One node file: RAM-block offsets [ram_start, ram_start + size)."""

    ram_start: int
    size: int
    mm: mmap.mmap


def q35_lowmem(ram_size: int) -> int:
    """How much of the RAM block q35 maps below 4 GiB."""
    lowmem = Q35_LOWMEM if ram_size >= Q35_LOWMEM_SPLIT else Q35_LOWMEM_SPLIT
    return min(lowmem, ram_size)


class GuestMemory:
    """Physical reads and writes of a guest's RAM by guest-physical address."""

    def __init__(self, maps: Sequence[mmap.mmap]) -> None:
        if not maps:
            raise MonitorUnavailable("the VM has no guest-RAM files to map")
        self._regions: list[Region] = []
        start = 0
        for mm in maps:
            self._regions.append(Region(start, len(mm), mm))
            start += len(mm)
        self.ram_size = start
        self.lowmem = q35_lowmem(start)
        self._starts = [r.ram_start for r in self._regions]

    @classmethod
    def from_fds(cls, fds: Sequence[int]) -> GuestMemory:
        """Map each node's file (fds in node order, as `Machine.memory_fds`)."""
        maps = []
        for fd in fds:
            size = os.fstat(fd).st_size
            maps.append(mmap.mmap(fd, size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE))
        return cls(maps)

    @classmethod
    def from_qemu_pid(cls, pid: int) -> GuestMemory:
        """The RAM files a running ktstr qemu holds open (their names are unlinked):
        for debugging a VM from another process."""
        found: dict[int, Path] = {}
        for link in Path(f"/proc/{pid}/fd").iterdir():
            m = re.search(r"/ktstr-\w+-node(\d+)", os.readlink(link))
            if m:
                found[int(m.group(1))] = link
        if not found:
            raise MonitorUnavailable(f"qemu pid {pid} has no ktstr guest-RAM file open")
        fds = [os.open(found[n], os.O_RDWR | os.O_CLOEXEC) for n in sorted(found)]
        try:
            return cls.from_fds(fds)
        finally:
            for fd in fds:
                os.close(fd)

    def close(self) -> None:
        """Unmap. Do it when the VM ends: a mapping keeps the (unlinked) RAM file alive."""
        for r in self._regions:
            r.mm.close()

    def ram_offset(self, paddr: int) -> int:
        """Guest-physical address -> offset in the RAM block."""
        if 0 <= paddr < self.lowmem:
            return paddr
        if FOUR_GIB <= paddr < FOUR_GIB + self.ram_size - self.lowmem:
            return paddr - FOUR_GIB + self.lowmem
        raise MonitorUnavailable(f"guest-physical address {paddr:#x} is not RAM "
                                 f"(RAM: {self.ram_size:#x} bytes, {self.lowmem:#x} below 4G)")

    def locate(self, paddr: int) -> tuple[mmap.mmap, int, int]:
        """(mapping, offset in it, bytes left in it) for `paddr`: what a precomputed
        reader keeps to `struct.unpack_from` without any further lookup."""
        off = self.ram_offset(paddr)
        r = self._regions[bisect.bisect_right(self._starts, off) - 1]
        left = r.size - (off - r.ram_start)
        if paddr < self.lowmem:  # RAM past lowmem continues at 4 GiB, not here
            left = min(left, self.lowmem - paddr)
        return r.mm, off - r.ram_start, left

    def read(self, paddr: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            mm, off, left = self.locate(paddr)
            n = min(size, left)
            out += mm[off:off + n]
            paddr, size = paddr + n, size - n
        return bytes(out)

    def write(self, paddr: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            mm, off, left = self.locate(paddr)
            n = min(len(view), left)
            mm[off:off + n] = view[:n]
            paddr, view = paddr + n, view[n:]

    def find_all(self, needle: bytes) -> Iterator[int]:
        """Guest-physical addresses where `needle` starts (not across node files)."""
        for r in self._regions:
            pos = r.mm.find(needle)
            while pos >= 0:
                ram = r.ram_start + pos
                yield ram if ram < self.lowmem else ram - self.lowmem + FOUR_GIB
                pos = r.mm.find(needle, pos + 1)
