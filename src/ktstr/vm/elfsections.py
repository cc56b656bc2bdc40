"""Named sections of an ELF file held in memory: just enough for kernel modules and vmlinux.

Kernel modules keep their metadata in `.modinfo`; a vmlinux keeps its type information in
`.BTF`. This reads the section header table and the section-name string table of a
little-endian ELF32 or ELF64 image; it does not interpret segments, symbols or relocations.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

ELF_MAGIC = b"\x7fELF"


class ElfFormatError(ValueError):
    """The bytes are not an ELF image this reader understands."""


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    offset: int  # file offset, bytes
    size: int  # bytes (0 for SHT_NOBITS sections such as .bss)


def sections(data: bytes | memoryview) -> dict[str, Section]:
    """Every named section of the ELF image `data`, by name."""
    buf = memoryview(data)
    if bytes(buf[:4]) != ELF_MAGIC:
        raise ElfFormatError("no ELF magic")
    elf_class, endian = buf[4], buf[5]
    if endian != 1:
        raise ElfFormatError("big-endian ELF is not supported")
    if elf_class == 2:
        shoff, = struct.unpack_from("<Q", buf, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", buf, 0x3A)
        header_fmt, name_off, off_off, size_off = "<IIQQQQ", 0, 4, 5
    elif elf_class == 1:
        shoff, = struct.unpack_from("<I", buf, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", buf, 0x2E)
        header_fmt, name_off, off_off, size_off = "<IIIIII", 0, 4, 5
    else:
        raise ElfFormatError(f"unknown ELF class {elf_class}")
    if shoff == 0 or shnum == 0:
        return {}
    if shoff + shnum * shentsize > len(buf) or shstrndx >= shnum:
        raise ElfFormatError("section header table lies outside the image")

    def header(i: int) -> tuple[int, int, int, int]:
        fields = struct.unpack_from(header_fmt, buf, shoff + i * shentsize)
        return fields[name_off], fields[1], fields[off_off], fields[size_off]

    _, _, str_off, str_size = header(shstrndx)
    names = bytes(buf[str_off:str_off + str_size])
    out: dict[str, Section] = {}
    for i in range(1, shnum):
        name_idx, sh_type, offset, size = header(i)
        end = names.find(b"\0", name_idx)
        name = names[name_idx:end if end >= 0 else None].decode("ascii", "replace")
        out[name] = Section(name, offset, 0 if sh_type == 8 else size)  # 8 = SHT_NOBITS
    return out


def section_bytes(data: bytes | memoryview, name: str) -> bytes | None:
    """The contents of section `name`, or None when the image has no such section."""
    sec = sections(data).get(name)
    if sec is None:
        return None
    return bytes(memoryview(data)[sec.offset:sec.offset + sec.size])

