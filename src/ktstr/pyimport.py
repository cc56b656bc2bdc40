"""Importing a test or declarations file by its path, under a name of the caller's choice.

The guest agent imports a test's module from the same path the host collected
it from, and `ktstr verifier` imports the files that declare schedulers; both
need the module registered in `sys.modules` before it runs (dataclasses and
pickling look it up there).

The host also writes the test module's bytecode for the guest (`write_bytecode`),
in ktstr's cache rather than next to the source: pytest imports test modules
through its assertion rewriter, whose .pyc a plain import cannot use, and the
user's tree is not ours to write (nor is it written when PYTHONDONTWRITEBYTECODE
says so). Without it the guest compiles the module, and a restored guest then
runs CPython's whole compiler for the first time since the emulator's
translation cache was emptied (0.05-0.1 s of every run under TCG).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import marshal
import os
import sys
from pathlib import Path
from types import CodeType, ModuleType

#: Bytecode files kept in the cache (one per test module path, a few KiB each).
KEEP_BYTECODE = 256


def import_file(name: str, path: str | Path, bytecode: str | Path = "") -> ModuleType:
    """Import `path` as module `name`; ImportError if it is not a Python module.
    `bytecode`: a .pyc of `path` from `write_bytecode`, used when it still matches the
    source's mtime and size (the source is compiled otherwise)."""
    loader = (_BytecodeLoader(name, os.fspath(path), os.fspath(bytecode)) if bytecode
              else None)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def write_bytecode(source: str | Path, cache_dir: Path) -> str:
    """The path of a .pyc of `source` in `cache_dir`, written unless a current one is
    there; "" when the source cannot be read or compiled (the import will say why)."""
    source = os.path.abspath(source)
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    cached = cache_dir / f"{Path(source).stem}-{key}.{sys.implementation.cache_tag}.pyc"
    try:
        st = os.stat(source)
        if _read_current(cached, st) is not None:
            return str(cached)
        code = compile(Path(source).read_bytes(), source, "exec", dont_inherit=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}")  # a reader sees all or none
        partial.write_bytes(_header(st) + marshal.dumps(code))
        partial.replace(cached)
    except (OSError, SyntaxError, ValueError):
        return ""
    _prune(cache_dir)
    return str(cached)


def _header(source: os.stat_result) -> bytes:
    """A timestamp .pyc's header, as importlib writes it (PEP 552, flags 0)."""
    return (importlib.util.MAGIC_NUMBER + bytes(4)
            + (int(source.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
            + (source.st_size & 0xFFFFFFFF).to_bytes(4, "little"))


def _read_current(cached: Path, source: os.stat_result) -> CodeType | None:
    """The code in `cached` if it was compiled from `source` as it is now."""
    try:
        data = cached.read_bytes()
    except OSError:
        return None
    if data[:16] != _header(source):
        return None
    try:
        code = marshal.loads(data[16:])
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def _prune(cache_dir: Path) -> None:
    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:  # removed by a parallel run
            return 0.0
    for old in sorted(cache_dir.glob("*.pyc"), key=mtime, reverse=True)[KEEP_BYTECODE:]:
        old.unlink(missing_ok=True)


class _BytecodeLoader(importlib.machinery.SourceFileLoader):
    """A source loader that takes the code from a given .pyc while it matches."""

    def __init__(self, fullname: str, path: str, bytecode: str) -> None:
        super().__init__(fullname, path)
        self.bytecode = bytecode

    def get_code(self, fullname: str) -> CodeType:
        try:
            code = _read_current(Path(self.bytecode), os.stat(self.path))
        except OSError:
            code = None
        return code if code is not None else super().get_code(fullname)  # type: ignore[return-value]
