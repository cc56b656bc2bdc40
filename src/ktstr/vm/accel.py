"""Choose the accelerator: KVM only where it really runs guests, else TCG.

On the development machines /dev/kvm exists but does not run ordinary guest
kernels ("KVM internal error", then a hang), so the presence of the device is
not enough: KVM is chosen only when /dev/kvm opens read-write AND the host CPU
advertises hardware virtualisation (`vmx` or `svm`). `KTSTR_ACCEL=kvm|tcg`
forces the choice. Every result records the accelerator used.
"""

from __future__ import annotations

import os
from pathlib import Path

from ktstr.errors import ConfigError

ACCELS = ("kvm", "tcg")


def cpu_has_virt(cpuinfo: str) -> bool:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"vmx", "svm"})
    return False


def kvm_usable(dev: Path = Path("/dev/kvm"), cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    try:
        return cpu_has_virt(cpuinfo.read_text())
    except OSError:
        return False


def choose_accel(env: dict[str, str] | None = None) -> str:
    forced = (env if env is not None else dict(os.environ)).get("KTSTR_ACCEL", "").strip()
    if forced:
        if forced not in ACCELS:
            raise ConfigError(f"KTSTR_ACCEL={forced!r} is not an accelerator; hint: use kvm or tcg")
        return forced
    return "kvm" if kvm_usable() else "tcg"
