"""PID 1 duties of the guest: the mount table, reaping orphans, powering off.

The guest's / is the host's root (read-only 9p under a tmpfs overlay), so
only the kernel's own filesystems are mounted here. /tmp is deliberately not
replaced: tests and pytest's tmp_path live there on the host, and the overlay
already makes it writable.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

# The interpreter's own symbols include libc's. Not ctypes.util.find_library: it runs
# `ldconfig -p` in a subprocess, seconds of PID 1's start-up under emulation.
_libc = ctypes.CDLL(None, use_errno=True)

#: (source, target, fstype, data). Order matters: /sys before its children.
MOUNTS: tuple[tuple[str, str, str, str], ...] = (
    ("proc", "/proc", "proc", ""),
    ("sysfs", "/sys", "sysfs", ""),
    ("devtmpfs", "/dev", "devtmpfs", ""),
    ("devpts", "/dev/pts", "devpts", "ptmxmode=0666"),
    ("shm", "/dev/shm", "tmpfs", "mode=1777"),
    ("run", "/run", "tmpfs", "mode=0755"),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2", "nsdelegate"),
    ("debugfs", "/sys/kernel/debug", "debugfs", ""),
    ("tracefs", "/sys/kernel/tracing", "tracefs", ""),
    ("bpffs", "/sys/fs/bpf", "bpf", ""),
)

RB_POWER_OFF = 0x4321FEDC


def mount(source: str, target: str, fstype: str, data: str = "") -> None:
    Path(target).mkdir(parents=True, exist_ok=True)
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0,
                   data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t {fstype} {source} {target}: {os.strerror(err)}")


def mount_all() -> None:
    for source, target, fstype, data in MOUNTS:
        mount(source, target, fstype, data)


def kmsg(text: str) -> None:
    """Write to the kernel log, so agent messages interleave with the kernel's on the console."""
    try:
        with open("/dev/kmsg", "w") as f:
            for line in text.splitlines() or [""]:
                f.write(f"ktstr: {line}\n")
    except OSError:
        pass


def power_off() -> None:
    os.sync()
    _libc.reboot(RB_POWER_OFF)
    os._exit(1)  # only reached when reboot() failed


def set_wall_clock(seconds: float) -> None:
    """The guest's RTC is the host's, but a restored snapshot would be stale: set it."""
    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    ts = Timespec(int(seconds), int((seconds % 1) * 1e9))
    _libc.clock_settime(0, ctypes.byref(ts))  # CLOCK_REALTIME
