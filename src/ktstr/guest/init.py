"""PID 1 duties of the guest: the mount table, static keys, the host root, power-off,
the clock.

The agent starts from the initramfs (see ktstr.vm.initramfs). Once it has its
orders, `enter_host_root` makes the host's root (read-only 9p under a tmpfs
overlay) its `/`, with the kernel's file systems bound into it: every host
path is then visible at the same path and writable in the guest, while nothing
on the host is ever written. /tmp is deliberately not replaced: tests and
pytest's tmp_path live there on the host, and the overlay already makes it
writable.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib
import os
import time
from pathlib import Path

from ktstr.protocol import MODULES_FAILED, MODULES_LOADED, ROOT_TAG
from ktstr.system.libc import LIBC, Timespec

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

NEW_ROOT = "/mnt/root"

#: A cgroup with the cpuset controller, made before the guest says hello (so it is in
#: every snapshot) and never removed. The kernel turns its cpuset static keys on with
#: the first cpuset cgroup and off with the last; a flip patches kernel text with int3
#: breakpoints, and qemu 7.2's multi-threaded TCG lets another vCPU keep running the
#: half-patched code ("Oops: int3" in __alloc_frozen_pages_noprof, seen when a test's
#: cgroups came and went). Held here, the count never returns to zero. The kernel
#: command line does the same for schedstats and delay accounting
#: (ktstr.vm.machine.STATIC_KEYS_ON).
KEYS_CGROUP = "ktstr-keys"

RB_POWER_OFF = 0x4321FEDC
MS_BIND, MS_REC = 0x1000, 0x4000
RNDRESEEDCRNG = 0x5207  # _IO('R', 0x07)


def mount(source: str, target: str, fstype: str, data: str = "", flags: int = 0) -> None:
    Path(target).mkdir(parents=True, exist_ok=True)
    if LIBC.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                   flags, data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount -t {fstype} {source} {target}: {os.strerror(err)}")


def mount_all() -> None:
    for source, target, fstype, data in MOUNTS:
        mount(source, target, fstype, data)


def hold_static_keys() -> None:
    from ktstr.errors import KtstrError
    from ktstr.system.cgroup import CgroupFs

    cgroups = CgroupFs()
    try:
        cgroups.enable_controllers("", ["cpuset"])
        cgroups.create(KEYS_CGROUP)
    except (OSError, KtstrError) as e:  # a kernel without cpusets has no such key either
        kmsg(f"cpuset static keys not held: {e}")


#: How long the agent waits for /init's background module loading (a few tenths of a
#: second under TCG): beyond it something is wrong, and the boot fails saying so.
MODULES_WAIT_S = 60.0


def wait_for_modules(timeout_s: float = MODULES_WAIT_S) -> None:
    """Wait until /init has loaded the initramfs's modules (9p, overlay, virtio_blk...).

    /init loads them in the background while Python starts (ktstr.vm.initramfs);
    the hello waits for them, so that a guest saved after its hello has them.
    """
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(MODULES_LOADED):
        try:
            why = Path(MODULES_FAILED).read_text().strip()
        except FileNotFoundError:
            why = ""
        if why:
            raise RuntimeError(f"ktstr-init: {why}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"ktstr-init: the modules were not loaded within {timeout_s:.0f}s"
                               f" ({MODULES_LOADED} missing)")
        time.sleep(0.01)


def enter_host_root() -> None:
    """Make the host's root, read-only under a tmpfs overlay, this process's `/`.

    Done after the agent's hello, never before: qemu refuses to migrate (save a
    snapshot of) a guest with the 9p export mounted. The kernel's file systems
    are bound in whole (/sys with its cgroup2, debugfs...), so they stay visible
    from the initramfs root too, where PID 1 keeps running.
    """
    mount(ROOT_TAG, "/mnt/lower", "9p",
          "trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000")
    mount("overlay-rw", "/mnt/rw", "tmpfs", "mode=0755")
    for d in ("/mnt/rw/upper", "/mnt/rw/work"):
        os.mkdir(d)
    mount("overlay", NEW_ROOT, "overlay",
          "lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work")
    for top in ("/proc", "/sys", "/dev", "/run"):
        mount(top, NEW_ROOT + top, "", flags=MS_BIND | MS_REC)
    os.chroot(NEW_ROOT)
    os.chdir("/")
    # The import system cached the initramfs's directory listings (which hold only
    # what the agent imported), under the host's mtimes: forget them.
    importlib.invalidate_caches()


def reseed_kernel_rng(seed: bytes) -> None:
    """Mix `seed` into the kernel's pool and reseed its CRNG now.

    Every guest restored from one snapshot starts with the same RNG state; a
    write alone would only be folded in at the next scheduled reseed.
    """
    fd = os.open("/dev/urandom", os.O_WRONLY)
    try:
        os.write(fd, seed)
        fcntl.ioctl(fd, RNDRESEEDCRNG)
    finally:
        os.close(fd)


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
    LIBC.reboot(RB_POWER_OFF)
    os._exit(1)  # only reached when reboot() failed


def set_wall_clock(seconds: float) -> None:
    """The guest's RTC is the host's, but a restored snapshot would be stale: set it."""
    ts = Timespec(int(seconds), int((seconds % 1) * 1e9))
    LIBC.clock_settime(0, ctypes.byref(ts))  # CLOCK_REALTIME
