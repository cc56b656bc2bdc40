"""Network devices, from /sys/class/net.

`net_devices()` names every device (lo included); `net_device_flags(name)` is its
`flags` file, the kernel's `IFF_*` bits (`IFF_UP` = 0x1). Bringing a device up is
an ioctl, not a file write: the work type that needs it does that itself.
"""

from __future__ import annotations

from pathlib import Path

from ktstr.system import fs

SYS_ROOT = Path("/sys")

#: The `IFF_UP` bit of a device's flags: administratively up.
IFF_UP = 0x1


def net_devices(root: Path = SYS_ROOT) -> list[str]:
    """Every network device's name, sorted."""
    base = root / "class" / "net"
    try:
        return sorted(p.name for p in base.iterdir())
    except OSError as err:
        raise fs.SysIoError(f"cannot list {base}: {err.strerror}", str(base),
                            err.errno or 0) from err


def net_device_flags(name: str, root: Path = SYS_ROOT) -> int:
    """The device's `IFF_*` flags (its sysfs `flags` file, written in hex)."""
    path = root / "class" / "net" / name / "flags"
    text = fs.read_text(path).strip()
    try:
        return int(text, 16)
    except ValueError:
        raise fs.SysIoError(f"cannot parse {path}: {text!r} is not a hex number",
                            str(path)) from None
