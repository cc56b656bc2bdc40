"""x86 bzImage files: recognising one, reading its version, extracting the vmlinux inside.

A bzImage starts with the real-mode setup (its header carries "HdrS" at 0x202, the boot
protocol version at 0x206 and a pointer to the version string at 0x20e), followed by the
protected-mode part: a decompressor stub and the compressed vmlinux (the "payload",
located by `payload_offset`/`payload_length` at 0x248/0x24c since boot protocol 2.08).
The vmlinux matters because its `.BTF` section describes every kernel type: schedulers
are built against it and the host-side monitor reads guest memory with it. It is also
the image for a PVH boot (`-kernel vmlinux`), which skips in-guest decompression.

Supported payload compressions: zstd (Debian's 7.x kernels), xz, gzip, bzip2 and lzma.
LZ4 and LZO payloads are not supported.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import zstandard

from ktstr.errors import KernelError
from ktstr.vm.elfsections import ELF_MAGIC

Buffer: TypeAlias = bytes | memoryview

HDRS_OFFSET = 0x202
HDRS_MAGIC = b"HdrS"


def is_bzimage(data: bytes) -> bool:
    """True when `data` carries the x86 boot protocol's "HdrS" signature."""
    return data[HDRS_OFFSET:HDRS_OFFSET + 4] == HDRS_MAGIC


def check_bzimage(path: Path) -> bytes:
    """The bytes of `path`, which must be a bzImage; `KernelError` otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise KernelError(f"cannot read kernel image {path} ({err.strerror}); "
                          "hint: pass a readable bzImage") from err
    if not is_bzimage(data):
        raise KernelError(f"{path} is not a bzImage (no \"HdrS\" boot header at offset "
                          "0x202); hint: pass arch/x86/boot/bzImage of a built kernel, "
                          "not vmlinux or a compressed file")
    return data


def image_version(data: bytes) -> str | None:
    """The kernel release from the header's version string ("7.2.13+deb14-amd64 (...) #1 ...")."""
    if not is_bzimage(data) or len(data) < 0x210:
        return None
    ptr, = struct.unpack_from("<H", data, 0x20E)
    if ptr == 0:
        return None
    start = ptr + 0x200
    end = data.find(b"\0", start, start + 512)
    if end < 0:
        return None
    words = data[start:end].decode("ascii", "replace").split()
    return words[0] if words else None


def _zstd(blob: Buffer) -> bytes:
    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(blob))


def _xz(blob: Buffer) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(blob)


def _lzma(blob: Buffer) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(blob)


def _gzip(blob: Buffer) -> bytes:
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(blob)


def _bzip2(blob: Buffer) -> bytes:
    return bz2.BZ2Decompressor().decompress(blob)


#: Compressed-stream magics, as scripts/extract-vmlinux looks for them. Each decompressor
#: stops at the end of its stream, ignoring the size word the kernel build appends.
DECOMPRESSORS: tuple[tuple[str, bytes, Callable[[Buffer], bytes]], ...] = (
    ("zstd", b"\x28\xb5\x2f\xfd", _zstd),
    ("xz", b"\xfd7zXZ\x00", _xz),
    ("gzip", b"\x1f\x8b\x08", _gzip),
    ("bzip2", b"BZh", _bzip2),
    ("lzma", b"\x5d\x00\x00", _lzma),
)


def _payload(data: bytes) -> bytes | None:
    """The compressed vmlinux as the header locates it (boot protocol >= 2.08), if sane."""
    if len(data) < 0x250:
        return None
    protocol, = struct.unpack_from("<H", data, 0x206)
    if protocol < 0x208:
        return None
    setup_sects = data[0x1F1] or 4
    start = (setup_sects + 1) * 512
    offset, length = struct.unpack_from("<II", data, 0x248)
    if length == 0 or start + offset + length > len(data):
        return None
    return data[start + offset:start + offset + length]


def _try(decompress: Callable[[Buffer], bytes], blob: Buffer) -> bytes | None:
    try:
        out = decompress(blob)
    except (lzma.LZMAError, zlib.error, zstandard.ZstdError, OSError, ValueError, EOFError):
        return None
    return out if out[:4] == ELF_MAGIC else None


def extract_vmlinux(data: bytes) -> bytes:
    """The uncompressed vmlinux ELF inside bzImage bytes `data`.

    Uses the header's payload first; otherwise tries every occurrence of each known
    magic, like scripts/extract-vmlinux, keeping the first that yields an ELF image.
    """
    payload = _payload(data)
    if payload is not None:
        for _, magic, decompress in DECOMPRESSORS:
            if payload.startswith(magic) and (elf := _try(decompress, payload)):
                return elf
    view = memoryview(data)
    for _, magic, decompress in DECOMPRESSORS:
        pos = data.find(magic)
        while pos >= 0:
            if elf := _try(decompress, view[pos:]):
                return elf
            pos = data.find(magic, pos + 1)
    names = ", ".join(name for name, _, _ in DECOMPRESSORS)
    raise KernelError("no vmlinux found inside the kernel image: no compressed stream "
                      f"({names}) decompressed to an ELF file; hint: pass a built tree "
                      "that has vmlinux, or a kernel compressed with one of those")
