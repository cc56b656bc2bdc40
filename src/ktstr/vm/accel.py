"""Choose the accelerator: KVM only where it really runs guests, else TCG.

On the development machines /dev/kvm exists but does not run ordinary guest
kernels ("KVM internal error", then a hang), so the presence of the device is
not enough: KVM is chosen only when /dev/kvm opens read-write AND the host CPU
advertises hardware virtualisation (`vmx` or `svm`). `KTSTR_ACCEL=kvm|tcg`
forces the choice. Every result records the accelerator used.

Under TCG, each vCPU gets a host thread ("multi") unless a sched_ext scheduler
may load: qemu 7.2's multi-threaded TCG races the guest kernel's text patching
(a static key flipped at run time is patched through int3 breakpoints, and a
vCPU can keep a stale translation of the breakpoint; measured with 4 vCPUs
spinning: 3 guests of 4 loading and unloading scx_simple 8 times died with
"Oops: int3", 3 of 5 toggling kernel.sched_schedstats 400 times; none with one
thread). Loading a scheduler flips many keys, so those VMs run every vCPU on
one thread ("single"). The other flips ktstr knows of are held on from boot
(ktstr.vm.machine.STATIC_KEYS_ON, ktstr.guest.init.KEYS_CGROUP).
`KTSTR_TCG_THREADS=single|multi` overrides the choice.
"""

from __future__ import annotations

import os
from pathlib import Path

from ktstr.settings import ENV_TCG_THREADS, Settings, settings

#: What the guest kernel prints for a breakpoint that no text patching owns.
TEXT_PATCH_OOPS = "Oops: int3"


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


def choose_accel(current: Settings | None = None) -> str:
    """`KTSTR_ACCEL` when set (in `current`, default: this process's settings), else kvm
    where it runs guests, else tcg."""
    forced = (current or settings()).accel
    if forced:
        return forced
    return "kvm" if kvm_usable() else "tcg"


def choose_tcg_threads(scheduler_may_load: bool, current: Settings | None = None) -> str:
    """"single" where a sched_ext scheduler may load, else "multi"; `KTSTR_TCG_THREADS`
    (in `current`, default: this process's settings) wins."""
    forced = (current or settings()).tcg_threads
    if forced:
        return forced
    return "single" if scheduler_may_load else "multi"


def text_patch_race(console: str, tcg_threads: str) -> str:
    """Why a guest that died this way most likely did, and what to do (else "")."""
    if tcg_threads != "multi" or TEXT_PATCH_OOPS not in console:
        return ""
    return (f"the guest kernel took an \"{TEXT_PATCH_OOPS}\" with every vCPU on its own host "
            "thread: qemu 7.2's multi-threaded TCG races the kernel's text patching, which "
            "a static key flipped during the run does (loading a sched_ext scheduler, a "
            "sysctl such as kernel.sched_schedstats, core scheduling, tracepoints); hint: "
            "name a scheduler the test loads itself in staged_schedulers=, or run with "
            f"{ENV_TCG_THREADS}=single")
