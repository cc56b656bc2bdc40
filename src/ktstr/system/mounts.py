"""What is mounted where, from /proc/self/mountinfo.

`mount_fstype(path)` is the filesystem type of the mount holding `path` (tmpfs,
ext4, overlay, 9p, ...): the block I/O work types need to know whether O_DIRECT
and fdatasync reach a disk. `parse_mountinfo_fstype` does the same on a given
text, for unit tests. Mount points are unescaped (`\\040` is a space).
"""

from __future__ import annotations

import os
from pathlib import Path

from ktstr.system import fs

PROC_ROOT = Path("/proc")


def parse_mountinfo_fstype(path: str, mountinfo: str) -> str:
    """The type of the deepest mount in `mountinfo` holding the absolute, resolved
    `path`; "unknown" when none does."""
    best, kind = "", "unknown"
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, line.split(" - ", 1)[1].split()[0]
    return kind


def mount_fstype(path: str, root: Path = PROC_ROOT) -> str:
    """The filesystem type of the mount holding `path` (symlinks resolved)."""
    text = fs.read_text(root / "self" / "mountinfo")
    return parse_mountinfo_fstype(os.path.realpath(path), text)
