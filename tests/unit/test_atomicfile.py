"""ktstr.atomicfile.atomic_write: readers see the old file or the new, never a part."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ktstr.atomicfile import atomic_write


def test_atomic_write_replaces_the_file_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "doc.json"
    with atomic_write(path) as f:
        f.write("one")
    with atomic_write(path, durable=True) as f:
        f.write("two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["doc.json"]


def test_atomic_write_binary_writes_bytes(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    with atomic_write(path, binary=True) as f:
        f.write(b"\x00\xff")
    assert path.read_bytes() == b"\x00\xff"


def test_atomic_write_that_raises_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "doc"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["doc"]


def test_atomic_write_gives_the_mode_open_would(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f") as f:
            f.write("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644
