"""Guest-virtual to guest-physical addresses, the way the x86-64 kernel lays them out.

Three cases, cheapest first:
- the kernel image (text, data, bss: every global the monitor reads) is mapped at
  `__START_KERNEL_map` onto `phys_base`: `pa = va - 0xffffffff80000000 + phys_base`,
  whatever KASLR chose (vmcoreinfo gives `phys_base`; symbols are already shifted);
- the direct map of all RAM starts at `page_offset_base` (randomized by
  `CONFIG_RANDOMIZE_MEMORY`, so a variable read from the guest): `pa = va - base`;
  per-CPU areas and slab objects (`struct rq`, `task_struct`, `scx_sched`) are there;
- anything else (vmalloc, BPF maps, modules) by walking the page tables from
  `init_top_pgt`, 4- or 5-level as vmcoreinfo says, honouring 1 GiB and 2 MiB pages.
Per-CPU variables: `&var + __per_cpu_offset[cpu]`, modulo 2**64.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence

from ktstr.errors import MonitorUnavailable
from ktstr.monitor.guestmem import GuestMemory

START_KERNEL_MAP = 0xFFFFFFFF80000000
KERNEL_IMAGE_SIZE = 1 << 30  # the image mapping's size with KASLR (NUMBER(KERNEL_IMAGE_SIZE))
PAGE_SIZE = 4096
PTE_PRESENT = 1 << 0
PTE_PSE = 1 << 7  # a 1 GiB (PUD) or 2 MiB (PMD) page
PTE_ADDR_MASK = 0x000F_FFFF_FFFF_F000  # bits 12-51; bit 63 is NX, 52-62 software
U64 = struct.Struct("<Q")
MASK64 = (1 << 64) - 1
DIRECT_MAP_MAX = 1 << 46  # the direct map's span with 4-level paging (64 TiB)


class AddressSpace:
    """Reads and writes of the guest kernel's virtual memory."""

    def __init__(self, mem: GuestMemory, *, phys_base: int, top_pgt: int, l5: bool,
                 sme_mask: int = 0) -> None:
        self.mem = mem
        self.phys_base = phys_base
        self.l5 = l5
        self._addr_mask = PTE_ADDR_MASK & ~sme_mask
        self.top_pgt_pa = self.image_pa(top_pgt) if top_pgt >= START_KERNEL_MAP else top_pgt
        self.page_offset_base: int | None = None  # set once read (set_direct_map)
        self.per_cpu_offsets: tuple[int, ...] = ()

    # -- translation ---------------------------------------------------------

    def image_pa(self, va: int) -> int:
        return va - START_KERNEL_MAP + self.phys_base

    def set_direct_map(self, page_offset_base: int) -> None:
        self.page_offset_base = page_offset_base

    def pa(self, va: int) -> int:
        """Guest-physical address of `va`; MonitorUnavailable when it is not mapped."""
        if va >= START_KERNEL_MAP:
            return self.image_pa(va)
        base = self.page_offset_base
        if base is not None and 0 <= va - base < DIRECT_MAP_MAX:
            return va - base
        return self.walk(va)

    def walk(self, va: int) -> int:
        """The page-table walk the MMU does, from the kernel's top-level table."""
        shifts = (48, 39, 30, 21, 12) if self.l5 else (39, 30, 21, 12)
        table = self.top_pgt_pa
        for shift in shifts:
            entry = int(U64.unpack(self.mem.read(table + ((va >> shift) & 0x1FF) * 8, 8))[0])
            if not entry & PTE_PRESENT:
                raise MonitorUnavailable(f"guest address {va:#x} is not mapped "
                                         f"(no present entry at level shift {shift})")
            frame = entry & self._addr_mask
            if shift in (30, 21) and entry & PTE_PSE:
                size = 1 << shift
                return (frame & ~(size - 1)) | (va & (size - 1))
            table = frame
        return table | (va & (PAGE_SIZE - 1))

    # -- access --------------------------------------------------------------

    def locate(self, va: int, size: int) -> tuple[mmap.mmap, int]:
        """(mapping, offset) holding `size` bytes at `va`, for a precomputed reader
        that unpacks straight from the mapping. The bytes must not cross a page."""
        if (va & (PAGE_SIZE - 1)) + size > PAGE_SIZE:
            raise ValueError(f"{size} bytes at {va:#x} cross a page boundary")
        mm, off, _left = self.mem.locate(self.pa(va))
        return mm, off

    def read(self, va: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            n = min(size, PAGE_SIZE - (va & (PAGE_SIZE - 1)))
            out += self.mem.read(self.pa(va), n)
            va, size = va + n, size - n
        return bytes(out)

    def write(self, va: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = min(len(view), PAGE_SIZE - (va & (PAGE_SIZE - 1)))
            self.mem.write(self.pa(va), bytes(view[:n]))
            va, view = va + n, view[n:]

    def u64(self, va: int) -> int:
        return int(U64.unpack(self.read(va, 8))[0])

    def u32(self, va: int) -> int:
        return int(struct.unpack("<I", self.read(va, 4))[0])

    def cstring(self, va: int, size: int) -> str:
        return self.read(va, size).split(b"\0", 1)[0].decode("utf-8", "replace")

    # -- per-CPU -------------------------------------------------------------

    def set_per_cpu_offsets(self, offsets: Sequence[int]) -> None:
        self.per_cpu_offsets = tuple(offsets)

    def per_cpu(self, va: int, cpu: int) -> int:
        """The address of CPU `cpu`'s copy of the per-CPU variable at `va`."""
        if not 0 <= cpu < len(self.per_cpu_offsets):
            raise MonitorUnavailable(f"no per-CPU offset for CPU {cpu} "
                                     f"({len(self.per_cpu_offsets)} CPUs known)")
        return (va + self.per_cpu_offsets[cpu]) & MASK64
