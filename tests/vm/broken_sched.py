"""A real scheduler the BPF verifier rejects: scx_simple with one instruction changed.

The skeleton embeds its BPF object (an ELF of machine EM_BPF). In the section of
`simple_enqueue` the first instruction reads the program's context,
`r6 = *(u64 *)(r1 + 8)`; this makes it read through r9 instead, a register that
holds nothing at a program's entry, which the verifier refuses (`R9 !read_ok`).
Everything else (BTF, relocations, the other programs) is untouched, so libbpf gets
as far as the kernel's verifier and prints its log.
"""

import struct
from pathlib import Path

EM_BPF = 247
SECTION = "struct_ops/simple_enqueue"
BPF_LDX_DW = 0x79  # BPF_LDX | BPF_MEM | BPF_DW
R1, R9 = 1, 9


def _embedded_bpf_objects(data: bytes):
    at = data.find(b"\x7fELF", 1)
    while at > 0:
        if data[at + 4:at + 6] == b"\x02\x01" and \
                struct.unpack_from("<H", data, at + 18)[0] == EM_BPF:
            yield at
        at = data.find(b"\x7fELF", at + 1)


def _section_offset(data: bytes, elf: int, wanted: str) -> int | None:
    (shoff,) = struct.unpack_from("<Q", data, elf + 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, elf + 0x3A)

    def header(n: int) -> tuple[int, int]:  # (sh_name, sh_offset)
        fields = struct.unpack_from("<IIQQQQIIQQ", data, elf + shoff + n * shentsize)
        return fields[0], fields[4]

    strtab = header(shstrndx)[1]
    for n in range(shnum):
        name_off, offset = header(n)
        start = elf + strtab + name_off
        if data[start:data.index(b"\0", start)].decode(errors="replace") == wanted:
            return elf + offset
    return None


def make_broken_simple(scx_simple: Path, out: Path) -> Path:
    data = bytearray(scx_simple.read_bytes())
    for elf in _embedded_bpf_objects(bytes(data)):
        insn = _section_offset(bytes(data), elf, SECTION)
        if insn is None:
            continue
        opcode, regs = data[insn], data[insn + 1]
        assert opcode == BPF_LDX_DW and regs >> 4 == R1, (
            f"{SECTION} starts with {bytes(data[insn:insn + 8]).hex()}, not a load from r1: "
            "this scx_simple is not the one the patch was written for")
        data[insn + 1] = (R9 << 4) | (regs & 0x0F)
        out.write_bytes(bytes(data))
        out.chmod(0o755)
        return out
    raise AssertionError(f"no BPF object with a {SECTION} section in {scx_simple}")
