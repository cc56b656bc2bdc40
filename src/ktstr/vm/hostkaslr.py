"""KASLR done by the host: the vmlinux relocated to a random virtual offset, booted by PVH.

A bzImage randomizes where the kernel runs in its decompressor (arch/x86/boot/compressed):
it picks a random 2 MiB-aligned virtual address within the kernel image area and adds the
difference to every absolute reference to the kernel, listed by the build in a table
appended to the compressed vmlinux (arch/x86/tools/relocs.c). Under TCG that decompressor
costs ~0.8 s of every cold boot; PVH (`-kernel vmlinux`) skips it, and with it KASLR.
This module does the decompressor's part on the host, per boot, so a PVH boot still runs
the kernel at a random virtual address.

The table (after the ELF, as the vmlinux inside a bzImage carries it) is a list of 32-bit
words, each the low half of a sign-extended kernel virtual address, in lists separated by
zero words and read from the end, as misc.c `handle_relocations` does: the 32-bit sites
(`*(u32 *)p += delta`), on kernels with zero-based per-CPU data the inverse 32-bit sites
(`-= delta`), then the 64-bit sites (`*(u64 *)p += delta`). A 7.x kernel has two lists
(no inverse one); which layout it is follows from where the table must start, right
after the ELF.

The kernel proper copes with a moved image by itself: `startup_64` compares where it runs
(RIP-relative) with where it was relocated to be (an absolute, relocated reference) and
builds its page tables and `phys_base` from the difference, as after the decompressor;
`kaslr_offset()` (`_text - __START_KERNEL`) and vmcoreinfo's KERNELOFFSET then say the
offset. The PVH entry (arch/x86/platform/pvh/head.S) does not: it is written for a kernel
whose virtual addresses are the linked ones. Two things are fixed here, in its page
tables only (they serve from the PVH entry until `startup_64` switches to its own):

- their table-to-table entries (`sym - __START_KERNEL_map + flags`) are in the 64-bit
  list, so relocating them would point them `delta` bytes away: those sites are skipped;
- it calls `xen_prepare_pvh` at its linked virtual address, whose code then follows
  relocated (moved) pointers: the kernel-map table gets the moved range mapped onto the
  same physical pages as well, which needs the offset to be at least the image's span
  (the two ranges must not overlap; 449 of the decompressor's 477 offsets on 7.2).

What stays different from the bzImage's KASLR: the physical address is the linked one,
and `boot_params.hdr.loadflags` has no KASLR_FLAG (PVH builds boot_params in the guest),
so `kaslr_enabled()` is false: the direct map, vmalloc and vmemmap bases and the module
area are not randomized, and a panic prints "Kernel Offset: disabled".
"""

from __future__ import annotations

import bisect
import functools
import random
import struct
from dataclasses import dataclass
from pathlib import Path

from ktstr.errors import KernelError

START_KERNEL_MAP = 0xFFFFFFFF80000000
PT_LOAD, PT_NOTE = 1, 4
XEN_ELFNOTE_PHYS32_ENTRY = 18
XEN_ELFNOTE_PHYS32_RELOC = 19
PMD_SIZE = 2 << 20
PAGE_SIZE = 4096
PAGE_PSE = 0x80  # a 2 MiB page in a PMD entry
PAGE_PRESENT = 0x1
ENTRY_ADDR_MASK = 0x000F_FFFF_FFFF_F000
#: `lea disp32(%rbp), %eax; mov %rax, %cr3`: the PVH entry loading its top page table
#: (%rbp holds where the entry point runs).
LEA_EBP_DISP32 = b"\x8d\x85"
MOV_RAX_CR3 = b"\x0f\x22\xd8"
PVH_ENTRY_SCAN = 512  # bytes of the entry searched for that load
PTRS_PER_TABLE = 512
L4_START_KERNEL = 511  # pgd_index(__START_KERNEL_map), 4-level
L3_START_KERNEL = 510  # pud_index(__START_KERNEL_map)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class Segment:
    vaddr: int
    paddr: int
    offset: int  # in the file
    filesz: int
    memsz: int


@dataclass(frozen=True)
class RelocatableImage:
    """A vmlinux whose relocation table was read: what relocating it needs.

    Sites are file offsets of the ELF (`image`, the table cut off)."""

    image: bytes
    sites32: tuple[int, ...]
    sites32_inverse: tuple[int, ...]
    sites64: tuple[int, ...]  # without the PVH page tables' own entries
    kernel_pmd_table: int  # file offset of the PVH entry's kernel-map PMD table
    image_start: int  # physical, 2 MiB aligned down
    image_end: int  # physical, 2 MiB aligned up (bss and brk included)
    align: int
    image_area: int  # KERNEL_IMAGE_SIZE: the kernel's virtual window

    def offsets(self) -> range:
        """The virtual offsets this module can boot: multiples of the alignment from the
        image's span (so the linked and moved ranges do not overlap, see the module) to
        the last one keeping the image inside the kernel's window."""
        span = self.image_end - self.image_start
        first = -(-span // self.align) * self.align
        last = self.image_area - self.image_end
        return range(first, last + 1, self.align)

    def relocate(self, delta: int) -> bytearray:
        """The ELF with every site moved by `delta`, as the decompressor would."""
        if delta not in self.offsets():
            raise KernelError(f"KASLR offset {delta:#x} is outside {self.offsets()}; "
                              "hint: pick one of RelocatableImage.offsets()")
        out = bytearray(self.image)
        u32_unpack, u32_pack = _U32.unpack_from, _U32.pack_into
        for site in self.sites32:
            u32_pack(out, site, (u32_unpack(out, site)[0] + delta) & 0xFFFFFFFF)
        for site in self.sites32_inverse:
            u32_pack(out, site, (u32_unpack(out, site)[0] - delta) & 0xFFFFFFFF)
        u64_unpack, u64_pack = _U64.unpack_from, _U64.pack_into
        for site in self.sites64:
            u64_pack(out, site, (u64_unpack(out, site)[0] + delta) & 0xFFFFFFFFFFFFFFFF)
        # The moved range of the kernel map onto the image's physical pages as well.
        table = self.kernel_pmd_table
        flags = _U64.unpack_from(out, table + 8 * (self.image_start // PMD_SIZE))[0] \
            & ~ENTRY_ADDR_MASK
        for phys in range(self.image_start, self.image_end, PMD_SIZE):
            index = (phys + delta) // PMD_SIZE
            _U64.pack_into(out, table + 8 * index, phys | flags)
        return out


def _segments(elf: bytes) -> tuple[list[Segment], list[Segment]]:
    phoff, = _U64.unpack_from(elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    loads, notes = [], []
    for i in range(phnum):
        p_type, _, off, vaddr, paddr, filesz, memsz, _ = struct.unpack_from(
            "<IIQQQQQQ", elf, phoff + i * phentsize)
        seg = Segment(vaddr, paddr, off, filesz, memsz)
        if p_type == PT_LOAD:
            loads.append(seg)
        elif p_type == PT_NOTE:
            notes.append(seg)
    return loads, notes


def _xen_notes(elf: bytes, notes: list[Segment]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for seg in notes:
        pos, end = seg.offset, seg.offset + seg.filesz
        while pos + 12 <= end:
            namesz, descsz, kind = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            desc_at = pos + 12 + (namesz + 3 & ~3)
            if name == b"Xen":
                found[kind] = elf[desc_at:desc_at + descsz]
            pos = desc_at + (descsz + 3 & ~3)
    return found


def _elf_end(elf: bytes, loads: list[Segment]) -> int:
    shoff, = _U64.unpack_from(elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    headers_end: int = shoff + shentsize * shnum
    return max(headers_end, *(s.offset + s.filesz for s in loads))


def _split_lists(words: tuple[int, ...]) -> list[list[int]]:
    """The zero-separated lists of `words`, the first word being a separator."""
    lists: list[list[int]] = []
    for word in words:
        if word == 0:
            lists.append([])
        elif lists:
            lists[-1].append(word)
    return lists


def parse_image(data: bytes) -> RelocatableImage:
    """`data`, a vmlinux with the relocation table after it, ready to relocate;
    KernelError saying what is missing otherwise (the caller then boots the bzImage)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise KernelError("not a 64-bit ELF vmlinux")
    loads, notes = _segments(data)
    if not loads:
        raise KernelError("the vmlinux has no loadable segment")
    end = _elf_end(data, loads)
    table = data[end:]
    if len(table) < 8 or len(table) % 4 or table[:4] != b"\0\0\0\0":
        raise KernelError("no relocation table after the vmlinux (a kernel without "
                          "CONFIG_X86_NEED_RELOCS, or a vmlinux not taken from a bzImage)")
    lists = _split_lists(struct.unpack(f"<{len(table) // 4}I", table))
    if len(lists) == 2:
        raw64, raw32 = lists
        raw32_inverse: list[int] = []
    elif len(lists) == 3:
        raw64, raw32_inverse, raw32 = lists
    else:
        raise KernelError(f"the relocation table has {len(lists)} lists, not 2 or 3")

    def file_offsets(words: list[int], size: int) -> list[int]:
        """The file offsets of sites given as the low 32 bits of their addresses: sorted,
        then one slice per segment (a loop per site would take ~0.4 s on 7.2)."""
        words = sorted(words)
        out: list[int] = []
        for seg in loads:
            low = seg.vaddr & 0xFFFFFFFF
            first = bisect.bisect_left(words, low)
            last = bisect.bisect_right(words, low + seg.filesz - size)
            shift = seg.offset - low
            out += [w + shift for w in words[first:last]]
        if len(out) != len(words):
            raise KernelError(f"{len(words) - len(out)} relocation sites are outside the "
                              "vmlinux's segments")
        return out

    def phys_to_file(phys: int) -> int:
        for seg in loads:
            if seg.paddr <= phys < seg.paddr + seg.filesz:
                return seg.offset + phys - seg.paddr
        raise KernelError(f"physical address {phys:#x} is outside the vmlinux's segments")

    xen = _xen_notes(data, notes)
    if XEN_ELFNOTE_PHYS32_ENTRY not in xen:
        raise KernelError("the vmlinux has no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY): "
                          "a kernel without CONFIG_PVH")
    entry = int.from_bytes(xen[XEN_ELFNOTE_PHYS32_ENTRY][:4], "little")
    reloc_note = xen.get(XEN_ELFNOTE_PHYS32_RELOC, b"")
    if len(reloc_note) < 12:
        raise KernelError("the vmlinux has no XEN_ELFNOTE_PHYS32_RELOC note: its PVH "
                          "entry predates the page tables this relocation expects")
    align, _, maximum = struct.unpack_from("<III", reloc_note)
    top = _pvh_top_table(data, phys_to_file(entry), entry)
    # The tables the PVH entry walks: the top one, the third-level ones it points to;
    # their present entries are table-to-table links, all of them relocation sites.
    tables = {phys_to_file(top)}
    top_off = phys_to_file(top)
    l3s = {_U64.unpack_from(data, top_off + 8 * i)[0] & ENTRY_ADDR_MASK
           for i in range(PTRS_PER_TABLE) if _U64.unpack_from(data, top_off + 8 * i)[0]}
    tables |= {phys_to_file(t) for t in l3s}
    kernel_l3 = _U64.unpack_from(data, top_off + 8 * L4_START_KERNEL)[0] & ENTRY_ADDR_MASK
    kernel_pmd = _U64.unpack_from(data, phys_to_file(kernel_l3) + 8 * L3_START_KERNEL)[0] \
        & ENTRY_ADDR_MASK
    if not kernel_l3 or not kernel_pmd:
        raise KernelError("the PVH page tables do not map __START_KERNEL_map")
    pmd_off = phys_to_file(kernel_pmd)
    for i in range(PTRS_PER_TABLE):
        value, = _U64.unpack_from(data, pmd_off + 8 * i)
        if value and (value & ENTRY_ADDR_MASK != i * PMD_SIZE or not value & PAGE_PSE):
            raise KernelError("the PVH kernel-map table is not a linear map of 2 MiB pages")
    sites64 = file_offsets(raw64, 8)
    in_tables = {s for s in sites64 if s - s % PAGE_SIZE in tables}
    links = {off + 8 * i for off in tables for i in range(PTRS_PER_TABLE)
             if _U64.unpack_from(data, off + 8 * i)[0]}
    if in_tables != links:
        raise KernelError("the PVH page tables' entries are not the relocation sites "
                          "expected")
    start = min(s.paddr for s in loads) // PMD_SIZE * PMD_SIZE
    stop = -(-max(s.paddr + s.memsz for s in loads) // PMD_SIZE) * PMD_SIZE
    return RelocatableImage(
        image=data[:end],
        sites32=tuple(file_offsets(raw32, 4)),
        sites32_inverse=tuple(file_offsets(raw32_inverse, 4)),
        sites64=tuple(s for s in sites64 if s not in in_tables),
        kernel_pmd_table=pmd_off, image_start=start, image_end=stop,
        align=max(align, PMD_SIZE), image_area=maximum + 1)


def _pvh_top_table(data: bytes, entry_off: int, entry: int) -> int:
    """The physical address of the top page table the PVH entry loads into CR3."""
    code = data[entry_off:entry_off + PVH_ENTRY_SCAN]
    at = code.find(MOV_RAX_CR3)
    while at >= 0:
        if at >= 6 and code[at - 6:at - 4] == LEA_EBP_DISP32:
            disp, = struct.unpack_from("<i", code, at - 4)
            return entry + int(disp)
        at = code.find(MOV_RAX_CR3, at + 1)
    raise KernelError("the PVH entry does not load its page table as expected "
                      "(lea disp32(%rbp),%eax; mov %rax,%cr3)")


def load_image(source: Path) -> RelocatableImage:
    """`source` (vmlinux + relocation table) parsed, cached per file version (parsing
    7.2's 340,000 sites takes ~0.3 s); KernelError when it cannot be relocated."""
    st = source.stat()
    return _load_image(str(source), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def _load_image(path: str, _mtime_ns: int, _size: int) -> RelocatableImage:
    return parse_image(Path(path).read_bytes())


def write_relocated(source: Path, dest: Path, rng: random.Random | None = None) -> int:
    """Write `source` (vmlinux + relocation table) relocated to a random offset to
    `dest`; returns the offset (what the guest's kaslr_offset() will say)."""
    image = load_image(source)
    delta = (rng or random.SystemRandom()).choice(image.offsets())
    dest.write_bytes(image.relocate(delta))
    return delta
