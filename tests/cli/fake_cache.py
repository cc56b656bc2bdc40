"""A kernel cache with fake kernels, for the command-line tests that boot nothing."""

from __future__ import annotations

import json
import struct
from pathlib import Path

KEY = "7.2.13+deb14-amd64"


def fake_bzimage(version: str) -> bytes:
    """The setup header of a bzImage naming `version`: enough for the cache to read it."""
    setup = bytearray(4 * 512)
    setup[0x1F1] = 3
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<HH", setup, 0x206, 0x20F, 0)
    vstr = version.encode() + b" (t@example) #1\0"
    setup[0x300:0x300 + len(vstr)] = vstr
    struct.pack_into("<H", setup, 0x20E, 0x100)
    return bytes(setup)


def add_kernel(kernels: Path, key: str = KEY, *, sched_ext: bool = True) -> Path:
    """A cache entry `kernels/key` as `ktstr kernel fetch` leaves one (one module)."""
    entry = kernels / key
    (entry / "modules").mkdir(parents=True)
    (entry / "vmlinuz").write_bytes(fake_bzimage(key))
    (entry / "config").write_text(f"CONFIG_SCHED_CLASS_EXT={'y' if sched_ext else 'n'}\n")
    (entry / "modules" / "9p.ko").write_bytes(b"\x7fELF")
    (entry / "modules" / "load-order").write_text("9p.ko\n")
    (entry / "kernel.json").write_text(json.dumps({
        "key": key, "version": key, "mirror": "file:/srv/debian",
        "fetched_at": "2026-11-23T10:00:00+00:00"}))
    return entry
