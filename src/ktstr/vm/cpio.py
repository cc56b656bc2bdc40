"""A minimal writer of the kernel's initramfs format (cpio "newc").

Only what an initramfs needs: directories, regular files and symlinks, all
owned by root, with fixed timestamps so the same inputs give the same bytes
(and so the same cache key).
"""

from __future__ import annotations

import stat
from typing import BinaryIO

_TRAILER = "TRAILER!!!"


class CpioWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._ino = 1
        self._dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes, mtime: int = 0) -> None:
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (
            self._ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(encoded), 0))
        self._ino += 1
        self._out.write(header.encode() + encoded)
        self._pad(110 + len(encoded))
        self._out.write(data)
        self._pad(len(data))

    def _pad(self, n: int) -> None:
        self._out.write(b"\0" * (-n % 4))

    def mkdir(self, path: str) -> None:
        """Create `path` and its parents (idempotent)."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self._dirs:
                self._dirs.add(d)
                self._entry(d, stat.S_IFDIR | 0o755, b"")

    def file(self, path: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        path = path.strip("/")
        if "/" in path:
            self.mkdir(path.rsplit("/", 1)[0])
        self._entry(path, stat.S_IFREG | mode, data, mtime)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        if "/" in path:
            self.mkdir(path.rsplit("/", 1)[0])
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def directory(self, path: str, mode: int, mtime: int = 0) -> None:
        """A directory with the given permission bits (its parents must exist already)."""
        path = path.strip("/")
        if path not in self._dirs:
            self._dirs.add(path)
            self._entry(path, stat.S_IFDIR | mode, b"", mtime)

    def close(self) -> None:
        self._entry(_TRAILER, 0, b"")
