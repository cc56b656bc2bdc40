"""ktstr.vm.hostkaslr on a synthetic vmlinux: one segment holding a PVH entry that loads
its page tables as the kernel's does, those tables, a few relocated words, the Xen notes,
and the relocation table after the ELF."""

import random
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from ktstr.errors import KernelError
from ktstr.topology import Topology
from ktstr.vm.hostkaslr import PMD_SIZE, parse_image, write_relocated
from ktstr.vm.kernel import Kernel
from ktstr.vm.machine import Machine, VmSpec, machine_identity

VADDR = 0xFFFFFFFF81000000
PADDR = 0x1000000
SEG_OFF = 0x1000  # the segment's place in the file
SEG_SIZE = 0x10000
TOP, L3_IDENT, L3_KERNEL, L2_IDENT, L2_KERNEL = (0x2000, 0x3000, 0x4000, 0x5000, 0x6000)
PTR64, PTR32, INV32 = 0x7000, 0x7013, 0x7020  # segment offsets of the relocated words
NOTES = 0x8000
TABLE_FLAGS, PMD_FLAGS = 0x63, 0xE3


def _note(kind: int, desc: bytes) -> bytes:
    return struct.pack("<III", 4, len(desc), kind) + b"Xen\0" + desc


def build(*, inverse: bool = False, pvh: bool = True, lists: bool = True,
          unlisted_link: bool = False) -> bytes:
    """A vmlinux as the bzImage's payload carries it (ELF, then relocation table)."""
    seg = bytearray(SEG_SIZE)
    # The entry: %rbp = entry, then lea TOP(%rbp),%eax; mov %rax,%cr3.
    seg[0:9] = b"\xfc\x90\x90\x90\x90\x90\x90\x90\x90"
    seg[9:15] = b"\x8d\x85" + struct.pack("<i", TOP)
    seg[15:18] = b"\x0f\x22\xd8"

    def put(off: int, value: int) -> None:
        struct.pack_into("<Q", seg, off, value)

    put(TOP, PADDR + L3_IDENT + TABLE_FLAGS)
    put(TOP + 8 * 273, PADDR + L3_IDENT + TABLE_FLAGS)
    put(TOP + 8 * 511, PADDR + L3_KERNEL + 0x67)
    put(L3_IDENT, PADDR + L2_IDENT + TABLE_FLAGS)
    put(L3_KERNEL + 8 * 510, PADDR + L2_KERNEL + TABLE_FLAGS)
    for i in range(512):
        put(L2_IDENT + 8 * i, i * PMD_SIZE + PMD_FLAGS)
        put(L2_KERNEL + 8 * i, i * PMD_SIZE + PMD_FLAGS)
    put(PTR64, VADDR + 0x100)
    struct.pack_into("<I", seg, PTR32, (VADDR + 0x200) & 0xFFFFFFFF)
    struct.pack_into("<I", seg, INV32, 0x1000)
    notes = b""
    if pvh:
        notes += _note(18, struct.pack("<Q", PADDR))
        notes += _note(19, struct.pack("<III", PMD_SIZE, PADDR, 0x3FFFFFFF))
    seg[NOTES:NOTES + len(notes)] = notes

    header = bytearray(SEG_OFF)
    header[:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", header, 16, 2, 62, 1, VADDR, 64, 0, 0, 64, 56, 2,
                     64, 0, 0)
    struct.pack_into("<IIQQQQQQ", header, 64, 1, 7, SEG_OFF, VADDR, PADDR, SEG_SIZE,
                     SEG_SIZE, PMD_SIZE)
    struct.pack_into("<IIQQQQQQ", header, 64 + 56, 4, 4, SEG_OFF + NOTES, VADDR + NOTES,
                     PADDR + NOTES, len(notes), len(notes), 4)
    elf = bytes(header) + bytes(seg)
    if not lists:
        return elf

    def site(off: int) -> int:
        return (VADDR + off) & 0xFFFFFFFF

    links = [TOP, TOP + 8 * 273, TOP + 8 * 511, L3_IDENT, L3_KERNEL + 8 * 510]
    if unlisted_link:
        links = links[:-1]
    table = [0, site(PTR64), *map(site, links)]
    if inverse:
        table += [0, site(INV32)]
    table += [0, site(PTR32)]
    return elf + struct.pack(f"<{len(table)}I", *table)


def _u64(data: bytes, seg_off: int) -> int:
    return int(struct.unpack_from("<Q", data, SEG_OFF + seg_off)[0])


def _u32(data: bytes, seg_off: int) -> int:
    return int(struct.unpack_from("<I", data, SEG_OFF + seg_off)[0])


def test_parse_finds_the_sites_and_leaves_the_pvh_table_links_out():
    image = parse_image(build())
    assert image.sites64 == (SEG_OFF + PTR64,)
    assert image.sites32 == (SEG_OFF + PTR32,)
    assert image.sites32_inverse == ()
    assert image.kernel_pmd_table == SEG_OFF + L2_KERNEL
    assert (image.image_start, image.image_end) == (PADDR, PADDR + PMD_SIZE)
    assert len(image.image) == SEG_OFF + SEG_SIZE  # the table is cut off
    # From the image's span (2 MiB) to the last offset keeping it below 1 GiB.
    assert image.offsets() == range(PMD_SIZE, (1 << 30) - PADDR - PMD_SIZE + 1, PMD_SIZE)


def test_relocate_moves_every_site_as_the_decompressor_does():
    delta = 0x2A00000
    out = parse_image(build(inverse=True)).relocate(delta)
    original = build(inverse=True)
    assert _u64(out, PTR64) == VADDR + 0x100 + delta
    assert _u32(out, PTR32) == (VADDR + 0x200 + delta) & 0xFFFFFFFF
    assert _u32(out, INV32) == (0x1000 - delta) & 0xFFFFFFFF
    for link in (TOP, TOP + 8 * 273, TOP + 8 * 511, L3_IDENT, L3_KERNEL + 8 * 510):
        assert _u64(out, link) == _u64(original, link)  # PVH walks them unmoved


def test_relocate_maps_the_moved_range_onto_the_image_in_the_pvh_kernel_map():
    delta = 0x2A00000
    out = parse_image(build()).relocate(delta)
    moved = (PADDR + delta) // PMD_SIZE
    assert _u64(out, L2_KERNEL + 8 * moved) == PADDR + PMD_FLAGS
    linked = PADDR // PMD_SIZE
    assert _u64(out, L2_KERNEL + 8 * linked) == PADDR + PMD_FLAGS  # still there
    assert _u64(out, L2_KERNEL + 8 * (moved + 1)) == (moved + 1) * PMD_SIZE + PMD_FLAGS


def test_relocate_refuses_an_offset_outside_the_window():
    image = parse_image(build())
    with pytest.raises(KernelError, match="outside"):
        image.relocate(0)  # the linked and moved ranges would overlap
    with pytest.raises(KernelError, match="outside"):
        image.relocate(PMD_SIZE + 4096)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lists": False}, "no relocation table"),
    ({"pvh": False}, "no PVH entry"),
    ({"unlisted_link": True}, "not the relocation sites"),
])
def test_parse_refuses_what_it_cannot_relocate(kwargs, message):
    with pytest.raises(KernelError, match=message):
        parse_image(build(**kwargs))


def test_parse_refuses_an_entry_that_loads_its_tables_otherwise():
    data = bytearray(build())
    data[SEG_OFF + 15:SEG_OFF + 18] = b"\x90\x90\x90"
    with pytest.raises(KernelError, match="does not load its page table"):
        parse_image(bytes(data))


def test_write_relocated_picks_an_offset_per_call(tmp_path):
    src = tmp_path / "vmlinux"
    src.write_bytes(build())
    offsets = {write_relocated(src, tmp_path / f"out{i}", random.Random(i)) for i in range(4)}
    image = parse_image(build())
    assert offsets <= set(image.offsets()) and len(offsets) > 1
    delta = write_relocated(src, tmp_path / "out", random.Random(7))
    assert _u64((tmp_path / "out").read_bytes(), PTR64) == VADDR + 0x100 + delta


def _kernel(tmp_path: Path, config: str, vmlinux: bytes) -> Kernel:
    tmp_path.mkdir()
    (tmp_path / "config").write_text(config)
    (tmp_path / "vmlinux").write_bytes(vmlinux)
    return Kernel(key="k", version="k", image=tmp_path / "vmlinuz",
                  config=tmp_path / "config", modules_dir=None,
                  vmlinux=tmp_path / "vmlinux")


def test_host_kaslr_image_needs_pvh_randomize_base_and_the_table(tmp_path):
    good = "CONFIG_PVH=y\nCONFIG_RANDOMIZE_BASE=y\n"
    assert _kernel(tmp_path / "a", good, build()).host_kaslr_image() == \
        tmp_path / "a" / "vmlinux"
    assert _kernel(tmp_path / "b", "CONFIG_PVH=y\n", build()).host_kaslr_image() is None
    assert _kernel(tmp_path / "c", good, build(lists=False)).host_kaslr_image() is None


@pytest.fixture
def _fake_qemu(monkeypatch):
    from ktstr.vm import qemu
    monkeypatch.setattr(qemu.QemuBinary, "find",
                        classmethod(lambda cls: qemu.QemuBinary(Path("/q"), "9.2.0")))


def test_a_cold_boot_gets_a_relocated_copy_and_the_identity_keeps_the_source(
        tmp_path, _fake_qemu):
    (tmp_path / "vmlinux").write_bytes(build())
    spec = VmSpec(image=tmp_path / "vmlinux", initrd=tmp_path / "initrd",
                  topology=Topology.parse("1n1l2c1t"), memory_mb=512, accel="tcg",
                  mem_dir=tmp_path, host_kaslr=True)
    machine = Machine(spec, tmp_path / "work")
    argv = machine.argv()
    kernel = argv[argv.index("-kernel") + 1]
    assert kernel == str(tmp_path / f"ktstr-vmlinux-{machine.run_id}")
    assert machine.kaslr_offset in parse_image(build()).offsets()
    assert str(tmp_path / "vmlinux") in machine_identity(spec)
    machine._cleanup()
    assert not Path(kernel).exists()
    plain = Machine(replace(spec, host_kaslr=False), tmp_path / "work2")
    assert str(tmp_path / "vmlinux") in plain.argv()
    plain._cleanup()
