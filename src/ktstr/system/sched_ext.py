"""sched_ext as the kernel shows it: /sys/kernel/sched_ext, the kernel log, sysctls.

What the 7.2 kernel exposes (kernel/sched/ext): `state` (enabled, disabled, and
the transient enabling/disabling), `enable_seq` (bumped on every enable),
`root/ops` (the loaded scheduler's name, present only while one is loaded) and
`root/events` (`NAME value` per line). How a scheduler ended is only in the
kernel log: `sched_ext: BPF scheduler "NAME" disabled (REASON)`, REASON one of
scx_exit_reason()'s strings, then `sched_ext: NAME: MESSAGE` when the exit
carries a message.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ktstr.system import fs

SCX_ROOT = Path("/sys/kernel/sched_ext")
KMSG = Path("/dev/kmsg")

#: scx_exit_reason() of kernel/sched/ext, by what it means for a test.
CLEAN_REASONS = ("unregistered from user space", "unregistered from BPF")
ERROR_REASONS = ("runtime error", "scx_bpf_error")
STALL_REASONS = ("runnable task stall",)

_ENABLED = re.compile(r'sched_ext: BPF scheduler "(?P<ops>[^"]*)" enabled')
_DISABLED = re.compile(r'sched_ext: BPF scheduler "(?P<ops>[^"]*)" disabled \((?P<reason>[^)]*)\)')


def state(root: Path = SCX_ROOT) -> str:
    """"enabled", "disabled", "enabling" or "disabling"; "" without sched_ext."""
    text = fs.read_optional(root / "state")
    return text.strip() if text is not None else ""


def ops_name(root: Path = SCX_ROOT) -> str | None:
    """The loaded scheduler's ops name, None when none is loaded."""
    text = fs.read_optional(root / "root" / "ops")
    return text.strip() if text is not None else None


def enable_seq(root: Path = SCX_ROOT) -> int:
    text = fs.read_optional(root / "enable_seq")
    return int(text) if text is not None and text.strip().isdigit() else 0


def events(root: Path = SCX_ROOT) -> dict[str, int]:
    """The loaded scheduler's event counters (`root/events`), {} when none is loaded."""
    text = fs.read_optional(root / "root" / "events") or ""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name and value.lstrip("-").isdigit():
            out[name.strip()] = int(value)
    return out


def set_sysctl(key: str, value: str, proc: Path = Path("/proc/sys")) -> None:
    """`sysctl key=value`, key in the dotted form ("kernel.sched_rt_runtime_us")."""
    fs.write_text(proc / key.replace(".", "/"), value)


@dataclass(frozen=True, slots=True)
class Disabled:
    """One "BPF scheduler ... disabled (reason)" report and the message after it."""

    ops: str
    reason: str
    message: str = ""


def parse_disabled(lines: list[str]) -> Disabled | None:
    """The last disable report in kernel log `lines`, with its exit message if any."""
    found: Disabled | None = None
    for i, line in enumerate(lines):
        m = _DISABLED.search(line)
        if m is None:
            continue
        prefix = f"sched_ext: {m['ops']}: "
        message = next((rest.split(prefix, 1)[1] for rest in lines[i + 1:i + 4]
                        if prefix in rest), "")
        found = Disabled(m["ops"], m["reason"], message)
    return found


def enabled_ops(lines: list[str]) -> str | None:
    """The ops name of the last "BPF scheduler ... enabled" report in `lines`."""
    found = None
    for line in lines:
        m = _ENABLED.search(line)
        if m is not None:
            found = m["ops"]
    return found


class KmsgReader:
    """Reads kernel log records as they arrive, from where it was opened (not the past)."""

    def __init__(self, path: Path = KMSG) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self._fd, 0, os.SEEK_END)
        self.lines: list[str] = []

    def poll(self) -> list[str]:
        """Records logged since the last call (also kept in `lines`)."""
        new: list[str] = []
        while True:
            try:
                rec = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EPIPE:  # overwritten before we read it: skip on
                    continue
                raise
            if not rec:
                break
            # "prio,seq,usec,flags;message\n" then optional " KEY=value" continuation lines
            _head, _, text = rec.decode("utf-8", "replace").partition(";")
            new.append(text.split("\n", 1)[0])
        self.lines.extend(new)
        return new

    def close(self) -> None:
        os.close(self._fd)
