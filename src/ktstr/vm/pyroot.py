"""The guest agent's Python, carried in the initramfs so its start-up reads RAM, not 9p.

Under TCG every file the interpreter opens over 9p costs round trips, and the
agent imports ~150 modules before it says hello. The initramfs therefore holds
the interpreter, its shared libraries, and every module file the agent imports
(sources, their .pyc, extension modules), each at its real absolute path, with
its real mode and mtime (so the .pyc files stay valid). The agent runs from
that tree as PID 1; the host root replaces it as `/` only once the agent has
its orders (see ktstr.vm.initramfs).

Directories are mirrored with their host mode, and a path component that is a
symlink on the host (Debian's /lib -> usr/lib) becomes the same symlink, so the
agent sees every path exactly as the host has it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from ktstr.atomicfile import atomic_write

#: Prints, as JSON, every file the agent's imports read; runs under the guest's interpreter.
_LIST_FILES = r"""
import importlib.util, json, os, site, sys
import ktstr.guest.__main__, ktstr.guest.agent
files = {sys.executable, os.path.realpath(sys.executable)}
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if not f:
        continue
    files.add(f)
    if f.endswith(".py"):
        c = importlib.util.cache_from_source(f)
        if os.path.exists(c):
            files.add(c)
cfg = os.path.join(sys.prefix, "pyvenv.cfg")
if os.path.exists(cfg):
    files.add(cfg)
# The locale /init sets (LANG=C.UTF-8); without it glibc falls back to ASCII.
for root, _dirs, names in os.walk("/usr/lib/locale/C.utf8"):
    files.update(os.path.join(root, n) for n in names)
for d in site.getsitepackages():
    if os.path.isdir(d):
        files.update(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".pth"))
print(json.dumps(sorted(files)))
"""

_LDD_PATH = re.compile(r"(/\S+) \(0x")


@dataclass(frozen=True, slots=True, order=True)
class TreeEntry:
    """One node to recreate in the guest: a directory, a regular file or a symlink."""

    path: str
    kind: str  # "dir" | "file" | "link"
    mode: int
    mtime: int
    size: int = 0
    target: str = ""


def agent_files(python: str = sys.executable) -> list[str]:
    out = subprocess.run([python, "-c", _LIST_FILES], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    files: list[str] = json.loads(out.stdout)
    return files


def shared_libraries(binaries: list[str]) -> set[str]:
    """What the dynamic loader maps for `binaries`, from ldd (the loader included)."""
    libs: set[str] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
        libs.update(_LDD_PATH.findall(out.stdout))
    return libs


def mirror(paths: list[str] | set[str]) -> list[TreeEntry]:
    """Every directory, symlink and file needed to recreate `paths` as they are on the host."""
    entries: dict[str, TreeEntry] = {}
    pending = sorted(set(paths))
    while pending:
        _add(Path(pending.pop()), entries, pending)
    return sorted(entries.values())


def _add(path: Path, entries: dict[str, TreeEntry], pending: list[str]) -> None:
    cur = Path("/")
    parts = path.parts[1:]
    for i, part in enumerate(parts):
        cur = cur / part
        st = os.lstat(cur)
        key = str(cur)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(cur)
            entries.setdefault(key, TreeEntry(key, "link", 0o777, int(st.st_mtime), 0, target))
            rest = Path(*parts[i + 1:]) if i + 1 < len(parts) else None
            resolved = (cur.parent / target) if not target.startswith("/") else Path(target)
            full = os.path.normpath(resolved / rest if rest else resolved)
            pending.append(full)  # continue on the other side of the link
            return
        if stat.S_ISDIR(st.st_mode):
            entries.setdefault(key, TreeEntry(key, "dir", stat.S_IMODE(st.st_mode),
                                              int(st.st_mtime)))
        elif stat.S_ISREG(st.st_mode) and i == len(parts) - 1:
            entries[key] = TreeEntry(key, "file", stat.S_IMODE(st.st_mode), int(st.st_mtime),
                                     st.st_size)


@cache
def agent_tree(python: str = sys.executable,
               cache_dir: Path | None = None) -> tuple[TreeEntry, ...]:
    """The tree the guest's Python start-up needs.

    Listing it runs the interpreter and ldd (~0.5 s), so the list is kept in
    `cache_dir` and reused while every file in it still has its size and mtime.
    """
    key = _digest(os.path.realpath(python), python, _LIST_FILES)
    saved = cache_dir / f"agent-tree-{key}.json" if cache_dir is not None else None
    if saved is not None:
        tree = _load(saved)
        if tree is not None:
            return tree
    files = agent_files(python)
    binaries = [f for f in files if f.endswith(".so") or ".so." in f]
    binaries.append(os.path.realpath(python))
    tree = tuple(mirror(set(files) | shared_libraries(binaries)))
    if saved is not None:
        with atomic_write(saved) as f:
            f.write(json.dumps([asdict(e) for e in tree]))
    return tree


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _load(path: Path) -> tuple[TreeEntry, ...] | None:
    """The saved tree, or None when it is missing or any file in it changed."""
    try:
        tree = tuple(TreeEntry(**e) for e in json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    for e in tree:
        try:
            st = os.lstat(e.path)
        except OSError:
            return None
        if e.kind == "file" and (st.st_size != e.size or int(st.st_mtime) != e.mtime):
            return None
    return tree
