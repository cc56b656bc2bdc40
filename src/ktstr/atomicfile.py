"""Writing a file so that readers see the old content or the new, never a part.

`atomic_write(path)` opens a temporary file beside `path` (same directory, so
the same filesystem) and, when the `with` block ends normally, renames it over
`path` with `os.replace` (atomic on POSIX). When the block raises, the temporary
file is removed and `path` is left as it was. Parent directories are created.
The file gets the mode `open()` would give it (0o666 less the umask).

`durable=True` also fsyncs the data before the rename, so a crash after the
call cannot leave an empty file (the sidecar of a run); caches that can be
rebuilt skip it.

Used for the run's sidecar, the host's caches (kernel layouts, symbol tables,
the initramfs, the agent's file list) and kernel module load orders. This module
imports nothing from ktstr, so any layer may use it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, TextIO, overload


@overload
def atomic_write(path: Path, *, binary: Literal[False] = False,
                 durable: bool = False) -> AbstractContextManager[TextIO]: ...
@overload
def atomic_write(path: Path, *, binary: Literal[True],
                 durable: bool = False) -> AbstractContextManager[BinaryIO]: ...
def atomic_write(path: Path, *, binary: bool = False,
                 durable: bool = False) -> AbstractContextManager[IO[Any]]:
    """A context manager yielding a file (text, or bytes with `binary`) that replaces
    `path` when the block ends without an exception."""
    return _replacing(Path(path), binary, durable)


@contextmanager
def _replacing(path: Path, binary: bool, durable: bool) -> Iterator[IO[Any]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
