"""Guest memory layout, vmcoreinfo discovery, kallsyms decoding and address translation,
on synthetic guest RAM (anonymous mappings) with page tables built by hand."""

import mmap
import struct
from pathlib import Path

import pytest

from ktstr.errors import MonitorUnavailable
from ktstr.monitor.guestmem import FOUR_GIB, GuestMemory, q35_lowmem
from ktstr.monitor.kallsyms import decode_names, symbol_address
from ktstr.monitor.translate import PTE_PRESENT, PTE_PSE, START_KERNEL_MAP, AddressSpace
from ktstr.monitor.vmcoreinfo import find_vmcoreinfo, parse

MiB = 1 << 20
DATA = Path(__file__).parent / "data" / "monitor"


def ram(*sizes: int) -> GuestMemory:
    return GuestMemory([mmap.mmap(-1, s) for s in sizes])


def test_q35_puts_two_gib_below_4g_only_from_2_75_gib():
    assert q35_lowmem(2048 * MiB) == 2048 * MiB
    assert q35_lowmem(0xAFF00000) == 0xAFF00000
    assert q35_lowmem(3072 * MiB) == 2048 * MiB


def test_nodes_are_concatenated_and_reads_cross_them():
    mem = ram(4 * MiB, 4 * MiB)
    mem.write(4 * MiB - 2, b"abcd")
    assert mem.read(4 * MiB - 2, 4) == b"abcd"
    _mm, off, left = mem.locate(4 * MiB + 1)
    assert (off, left) == (1, 4 * MiB - 1)
    with pytest.raises(MonitorUnavailable, match="not RAM"):
        mem.read(8 * MiB, 1)


def test_ram_above_lowmem_is_at_4g():
    mem = GuestMemory([mmap.mmap(-1, 3072 * MiB)])  # sparse: costs nothing until touched
    assert mem.ram_offset(FOUR_GIB + 5) == 2048 * MiB + 5
    with pytest.raises(MonitorUnavailable):
        mem.ram_offset(2048 * MiB)  # the PCI hole
    mem.write(FOUR_GIB, b"y")
    assert mem.locate(FOUR_GIB)[1] == 2048 * MiB
    with pytest.raises(MonitorUnavailable):
        mem.write(2048 * MiB - 1, b"xy")  # guest-physical RAM is not contiguous there


def test_vmcoreinfo_is_found_past_decoys():
    text = (DATA / "vmcoreinfo-7.2.13+deb14-amd64.txt").read_bytes()
    mem = ram(8 * MiB)
    mem.write(0x1000, b"OSRELEASE=%s\n\0")  # the kernel's own format string in .rodata
    mem.write(0x5000, text + b"\0")
    info = find_vmcoreinfo(mem)
    assert info.osrelease == "7.2.13+deb14-amd64"
    assert info.build_id == "f8da1e460d1343b62f4a8880ae5ce63634756e7a"
    # saved from a PVH boot: no KASLR of the image (the decompressor does it), 4-level
    assert (info.kernel_offset, info.phys_base, info.pgtable_l5) == (0, 0, False)
    assert info.symbols["init_top_pgt"] >= START_KERNEL_MAP
    assert info.numbers["phys_base"] == info.phys_base


def test_vmcoreinfo_absent_or_incomplete_is_unavailable():
    with pytest.raises(MonitorUnavailable, match="no OSRELEASE="):
        find_vmcoreinfo(ram(MiB))
    with pytest.raises(MonitorUnavailable, match=r"lacks KERNELOFFSET, NUMBER\(phys_base\)"):
        parse("OSRELEASE=6.1\nBUILD-ID=ab\nSYMBOL(init_top_pgt)=ffffffff82000000\n")


def test_kallsyms_names_one_and_two_byte_lengths():
    tokens = [bytes([i]) for i in range(256)]
    tokens[0xF0] = b"sched_"
    long_name = b"T" + b"x" * 130
    names = bytes([3, ord("D"), 0xF0, ord("a")])
    names += bytes([0x80 | (len(long_name) & 0x7F), len(long_name) >> 7]) + long_name
    assert decode_names(names, 2, tokens) == [b"Dsched_a", long_name]


def test_kallsyms_offsets_are_relative_to_their_entry():
    assert symbol_address(0xFFFFFFFF82000000, 2, -0x100, None) == 0xFFFFFFFF81FFFF08
    assert symbol_address(0, 0, -1, 0xFFFFFFFF81000000) == 0xFFFFFFFF81000000


class Tables:
    """Page tables in guest RAM, allocated a page at a time from `next`."""

    def __init__(self, mem: GuestMemory, l5: bool) -> None:
        self.mem, self.l5, self.next = mem, l5, 0x100000
        self.top = self.alloc()

    def alloc(self) -> int:
        page, self.next = self.next, self.next + 0x1000
        return page

    def map(self, va: int, pa: int, level_shift: int = 12) -> None:
        shifts = (48, 39, 30, 21, 12) if self.l5 else (39, 30, 21, 12)
        table = self.top
        for shift in shifts:
            slot = table + ((va >> shift) & 0x1FF) * 8
            if shift == level_shift:
                flags = PTE_PRESENT | (PTE_PSE if shift != 12 else 0)
                self.mem.write(slot, struct.pack("<Q", pa | flags | (1 << 63)))  # NX set
                return
            entry = struct.unpack("<Q", self.mem.read(slot, 8))[0]
            if not entry & PTE_PRESENT:
                entry = self.alloc() | PTE_PRESENT
                self.mem.write(slot, struct.pack("<Q", entry))
            table = entry & ~0xFFF & ((1 << 52) - 1)


@pytest.mark.parametrize("l5", [False, True])
def test_page_table_walk_4k_2m_1g(l5):
    mem = ram(64 * MiB)
    t = Tables(mem, l5)
    vmalloc = 0xFFFFC90000000000 if not l5 else 0xFF5FC90000000000
    t.map(vmalloc + 0x3000, 0x2345000)
    t.map(vmalloc + 0x40000000, 0x1400000, level_shift=21)  # a 2 MiB page
    t.map(vmalloc + 0x80000000, 0, level_shift=30)  # a 1 GiB page
    a = AddressSpace(mem, phys_base=0, top_pgt=t.top, l5=l5)
    assert a.walk(vmalloc + 0x3123) == 0x2345123
    assert a.walk(vmalloc + 0x40012345) == 0x1412345
    assert a.walk(vmalloc + 0x80000000 + 0x2345678) == 0x2345678
    mem.write(0x2345123, b"hello")
    assert a.read(vmalloc + 0x3123, 5) == b"hello"
    with pytest.raises(MonitorUnavailable, match="not mapped"):
        a.walk(vmalloc + 0x5000)


def test_kernel_image_direct_map_and_per_cpu():
    mem = ram(64 * MiB)
    t = Tables(mem, l5=False)  # only consulted for what is neither image nor direct map
    a = AddressSpace(mem, phys_base=0x80000, top_pgt=START_KERNEL_MAP + t.top - 0x80000,
                     l5=False)
    assert a.top_pgt_pa == t.top
    assert a.pa(START_KERNEL_MAP + 0x1000000 + 0x20) == 0x1080020
    base = 0xFF2A58EBC0000000
    a.set_direct_map(base)
    assert a.pa(base + 0x3000000) == 0x3000000
    a.set_per_cpu_offsets([0xFF2A58EC9FFF4000, 0xFF2A58ECA0074000])
    var = 0xFFFFFFFF83E2E000  # an image address: the sum wraps modulo 2**64
    assert a.per_cpu(var, 1) == (var + 0xFF2A58ECA0074000) % 2**64
    with pytest.raises(MonitorUnavailable, match="CPU 2"):
        a.per_cpu(var, 2)
    with pytest.raises(ValueError, match="cross a page"):
        a.locate(base + 0xFFC, 8)
    a.write(base + 0xFFC, struct.pack("<Q", 0x1122334455667788))  # writes may cross
    assert a.u64(base + 0xFFC) == 0x1122334455667788


def test_a_guest_without_a_kernel_is_unavailable_not_a_crash(tmp_path, monkeypatch):
    from ktstr.monitor.guestkernel import GuestKernel

    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path))  # no cached layout to lean on

    mem = ram(8 * MiB)
    mem.write(0x3000, (DATA / "vmcoreinfo-7.2.13+deb14-amd64.txt").read_bytes() + b"\0")
    with pytest.raises(MonitorUnavailable):  # vmcoreinfo, but nothing it points at
        GuestKernel.open(mem)
    with pytest.raises(MonitorUnavailable, match="vmcoreinfo"):
        GuestKernel.open(ram(MiB))
    assert not (tmp_path / "monitor").exists()  # nothing cached from a failed derivation
