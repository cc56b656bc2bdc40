"""Reading kernel tunables under /proc/sys, by their dotted sysctl name.

`sysctl_int("kernel.sched_rt_runtime_us")` is the value, or None when the
kernel has no such knob or it does not hold an integer. (Writing one is
`ktstr.system.sched_ext.set_sysctl`.)
"""

from __future__ import annotations

from pathlib import Path

from ktstr.system import fs

SYSCTL_ROOT = Path("/proc/sys")


def sysctl_int(key: str, root: Path = SYSCTL_ROOT) -> int | None:
    """The integer tunable `key` ("kernel.sched_rt_period_us"); None when it is missing
    or unreadable."""
    try:
        return fs.read_int(root / key.replace(".", "/"))
    except fs.SysIoError:
        return None
