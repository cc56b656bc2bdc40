"""Small synthetic kernel artefacts for the kernel tests: ELF files, modules, bzImages,
cache entries. Everything is built from bytes here; nothing is downloaded."""

from __future__ import annotations

import json
import lzma
import struct
from pathlib import Path

import zstandard


def make_elf(sections: dict[str, bytes]) -> bytes:
    """A little-endian ELF64 relocatable file holding `sections` (PROGBITS) and .shstrtab."""
    names = [*sections, ".shstrtab"]
    strtab = b"\0"
    name_off = {}
    for n in names:
        name_off[n] = len(strtab)
        strtab += n.encode() + b"\0"
    contents = {**sections, ".shstrtab": strtab}
    body = bytearray(64)
    offsets = {}
    for n in names:
        offsets[n] = len(body)
        body += contents[n]
    while len(body) % 8:
        body += b"\0"
    shoff = len(body)
    body += bytes(64)  # the null section
    for n in names:
        sh_type = 3 if n == ".shstrtab" else 1
        body += struct.pack("<IIQQQQIIQQ", name_off[n], sh_type, 0, 0, offsets[n],
                            len(contents[n]), 0, 0, 1, 0)
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    body[:64] = ident + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                                    len(names) + 1, len(names))
    return bytes(body)


def make_module(name: str, depends: list[str]) -> bytes:
    modinfo = f"license=GPL\0depends={','.join(depends)}\0name={name}\0vermagic=7.9.1 SMP\0"
    return make_elf({".text": b"\xc3" * 16, ".modinfo": modinfo.encode()})


def make_bzimage(payload: bytes, *, version: str = "7.9.1-test", setup_sects: int = 3,
                 protocol: int = 0x20F, stub: bytes = b"\x90" * 64) -> bytes:
    """A bzImage-shaped file: setup header, a stub, `payload` + the size word the build adds."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, protocol)
    vstr = f"{version} (tester@example) #1 SMP PREEMPT_DYNAMIC".encode() + b"\0"
    setup[0x300:0x300 + len(vstr)] = vstr
    struct.pack_into("<H", setup, 0x20E, 0x300 - 0x200)
    blob = payload + struct.pack("<I", 123456)
    struct.pack_into("<II", setup, 0x248, len(stub), len(blob))
    return bytes(setup) + stub + blob + bytes(100)


def fake_vmlinux() -> bytes:
    return make_elf({".text": b"\x90" * 4096, ".BTF": b"\x9f\xeb\x01\x00" + bytes(60)})


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def xz(data: bytes) -> bytes:
    return lzma.compress(data)


CONFIG_SCX = """\
CONFIG_SCHED_CLASS_EXT=y
CONFIG_DEBUG_INFO_BTF=y
CONFIG_LOCALVERSION="-test"
# CONFIG_FOO is not set
CONFIG_NETFS_SUPPORT=m
CONFIG_NET_9P=m
CONFIG_NET_9P_VIRTIO=m
CONFIG_9P_FS=m
CONFIG_OVERLAY_FS=y
"""


def make_cache_entry(kernels: Path, key: str, *, config: str = CONFIG_SCX,
                     modules: tuple[str, ...] = ("netfs", "9p")) -> Path:
    """A complete cache entry as `fetch_kernel` writes it, under `kernels/key`."""
    entry = kernels / key
    (entry / "modules").mkdir(parents=True)
    (entry / "vmlinuz").write_bytes(make_bzimage(zstd(fake_vmlinux()), version=key))
    (entry / "config").write_text(config)
    (entry / "vmlinux").write_bytes(fake_vmlinux())
    for m in modules:
        (entry / "modules" / f"{m}.ko").write_bytes(make_module(m, []))
    (entry / "modules" / "load-order").write_text("".join(f"{m}.ko\n" for m in modules))
    (entry / "kernel.json").write_text(json.dumps({"key": key, "version": key}))
    return entry
