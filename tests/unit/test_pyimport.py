"""ktstr.pyimport: importing by path, and the bytecode the host writes for the guest."""

import os
from pathlib import Path

from ktstr.pyimport import KEEP_BYTECODE, import_file, write_bytecode


def _module(tmp_path: Path, text: str = "VALUE = 1\n", name: str = "some_test_mod") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return path


def test_the_import_takes_the_code_from_the_bytecode_while_it_matches(tmp_path):
    path = _module(tmp_path)
    pyc = write_bytecode(path, tmp_path / "cache")
    assert pyc and Path(pyc).is_file()
    assert not (tmp_path / "__pycache__").exists()  # the user's tree is not written
    # Proof that the code came from the .pyc: one compiled from other source, same header.
    (tmp_path / "other").mkdir()
    other = _module(tmp_path / "other", "VALUE = 2\n")
    os.utime(other, ns=(os.stat(path).st_mtime_ns,) * 2)
    swapped = write_bytecode(other, tmp_path / "cache2")
    Path(pyc).write_bytes(Path(swapped).read_bytes())
    module = import_file("some_test_mod_a", path, pyc)
    assert module.VALUE == 2 and module.__file__ == str(path)


def test_a_changed_source_is_compiled_not_taken_from_stale_bytecode(tmp_path):
    path = _module(tmp_path)
    pyc = write_bytecode(path, tmp_path / "cache")
    path.write_text("VALUE = 22\n")  # another size: the .pyc no longer matches
    assert import_file("some_test_mod_b", path, pyc).VALUE == 22
    assert write_bytecode(path, tmp_path / "cache") == pyc  # rewritten for the new source
    assert import_file("some_test_mod_c", path, pyc).VALUE == 22


def test_missing_bytecode_falls_back_to_the_source(tmp_path):
    path = _module(tmp_path)
    assert import_file("some_test_mod_d", path, tmp_path / "nowhere.pyc").VALUE == 1


def test_a_file_that_does_not_compile_gets_no_bytecode(tmp_path):
    path = _module(tmp_path, "def broken(:\n")
    assert write_bytecode(path, tmp_path / "cache") == ""
    assert write_bytecode(tmp_path / "missing.py", tmp_path / "cache") == ""


def test_the_cache_keeps_the_most_recent(tmp_path):
    cache = tmp_path / "cache"
    for i in range(KEEP_BYTECODE + 3):
        write_bytecode(_module(tmp_path, name=f"m{i}"), cache)
    assert len(list(cache.glob("*.pyc"))) == KEEP_BYTECODE
