"""Hugepages on this host: the pool's counters and the hugetlbfs mounts.

`meminfo` reads /proc/meminfo (`HugePages_Free`, `HugePages_Rsvd`, `Hugepagesize`,
...) and `hugetlbfs_mounts` the hugetlbfs mounts of /proc/self/mountinfo with
their page size; `parse_meminfo` and `parse_hugetlbfs_mounts` do the same on a
given text, for unit tests. Whether a VM can use them is decided above
(ktstr.vm.perfmode): a file on a hugetlbfs mount is the only kind of hugepage
memory that qemu can share with the monitor, which maps guest RAM by fd.
"""

from __future__ import annotations

from pathlib import Path

from ktstr.system import fs

PROC_ROOT = Path("/proc")
#: hugetlbfs's `pagesize=` suffixes, in KiB.
_SIZE_UNITS = {"K": 1, "M": 1 << 10, "G": 1 << 20}


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as `name -> number` (the unit, kB where there is one, dropped)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        words = value.split()
        if sep and words and words[0].isdigit():
            out[key.strip()] = int(words[0])
    return out


def meminfo(root: Path = PROC_ROOT) -> dict[str, int]:
    return parse_meminfo(fs.read_text(root / "meminfo"))


def _pagesize_kb(size: str) -> int | None:
    """`pagesize=` in KiB: `2M`, `1G`, `2048K`, or plain bytes; None when unreadable."""
    if size.isdigit():
        return int(size) // 1024
    unit = _SIZE_UNITS.get(size[-1:].upper())
    return int(size[:-1]) * unit if unit and size[:-1].isdigit() else None


def parse_hugetlbfs_mounts(mountinfo: str, default_kb: int) -> list[tuple[Path, int]]:
    """(mount point, page size in KiB) of every hugetlbfs mount in `mountinfo`; a mount
    without `pagesize=` has the host's default size `default_kb`."""
    found: list[tuple[Path, int]] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if not after or after[0] != "hugetlbfs":
            continue
        size_kb: int | None = default_kb
        for option in (after[2] if len(after) > 2 else "").split(","):
            if option.startswith("pagesize="):
                size_kb = _pagesize_kb(option.removeprefix("pagesize="))
        if size_kb is not None:
            found.append((Path(fields[4].replace("\\040", " ")), size_kb))
    return found


def hugetlbfs_mounts(default_kb: int, root: Path = PROC_ROOT) -> list[tuple[Path, int]]:
    return parse_hugetlbfs_mounts(fs.read_text(root / "self" / "mountinfo"), default_kb)
