"""The initramfs: busybox, the modules for a 9p root, and a small /init.

/init loads the 9p and overlay modules, mounts the host's / read-only over
9p with a tmpfs overlay on top (so every host path is visible at the same
path and writable in the guest, while nothing on the host is ever written),
and switch_roots into the host's Python running the guest agent. The image
is cached by the hash of everything in it, so it is built once per kernel's
module set.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ktstr.errors import HostSetupError
from ktstr.vm.cpio import CpioWriter
from ktstr.vm.pyroot import TreeEntry

#: The 9p mount tag the VM layer gives the host root (see QemuArgs.host_root).
ROOT_TAG = "hostroot"

INIT_SCRIPT = f"""#!/bin/busybox sh
# ktstr /init: modules, host root over 9p under a tmpfs overlay, then the agent.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {{
    echo "ktstr-init: $*" > /dev/kmsg
    poweroff -f
}}
for m in $(cat /modules/load-order); do
    insmod "/modules/$m" || fail "insmod $m failed"
done
PY=
for x in $(cat /proc/cmdline); do
    case "$x" in ktstr.python=*) PY="${{x#ktstr.python=}}";; esac
done
[ -n "$PY" ] || fail "no ktstr.python= on the kernel command line"
mkdir -p /mnt/lower /mnt/rw /mnt/root
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 \\
    {ROOT_TAG} /mnt/lower || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 overlay-rw /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
# The agent's interpreter and imports, at their host paths, served from RAM.
[ -d /pyroot ] && cp -a /pyroot/. /mnt/rw/upper/
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work \\
    overlay /mnt/root || fail "cannot mount the overlay root"
umount /proc /sys /dev
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
exec switch_root /mnt/root "$PY" -m ktstr.guest
"""

BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))


def find_busybox() -> Path:
    """A statically linked busybox: the initramfs has no libc to offer a dynamic one."""
    override = os.environ.get("KTSTR_BUSYBOX")
    candidates = [Path(override)] if override else list(BUSYBOX_CANDIDATES)
    for path in candidates:
        if path.is_file() and _is_static(path):
            return path
    raise HostSetupError("no statically linked busybox found (looked at "
                         + ", ".join(map(str, candidates)) + ")",
                         "apt-get install busybox-static (or run `make setup`)")


def _is_static(path: Path) -> bool:
    # A dynamic ELF has a PT_INTERP header naming its loader; a static one does not.
    data = path.read_bytes()[:4096]
    return data[:4] == b"\x7fELF" and b"/ld-linux" not in data and b"ld64.so" not in data


def build_initramfs(modules: list[Path], cache_dir: Path,
                    tree: tuple[TreeEntry, ...] = ()) -> Path:
    """The initramfs holding busybox, `modules` (in load order), /init and, under
    /pyroot, `tree` (see ktstr.vm.pyroot); cached under a hash of all of it."""
    busybox = find_busybox().read_bytes()
    blobs = [(m.name, m.read_bytes()) for m in modules]
    h = hashlib.sha256(INIT_SCRIPT.encode())
    h.update(hashlib.sha256(busybox).digest())
    for name, data in blobs:
        h.update(name.encode() + hashlib.sha256(data).digest())
    for e in tree:  # files by identity (path, size, mtime), not content: cheap to key
        h.update(repr(e).encode())
    out = cache_dir / f"initramfs-{h.hexdigest()[:16]}.cpio"
    if out.exists():
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        cpio = CpioWriter(f)
        for d in ("bin", "proc", "sys", "dev", "mnt", "modules"):
            cpio.mkdir(d)
        cpio.file("bin/busybox", busybox, 0o755)
        cpio.file("init", INIT_SCRIPT.encode(), 0o755)
        for name, data in blobs:
            cpio.file(f"modules/{name}", data)
        cpio.file("modules/load-order", "".join(f"{n}\n" for n, _ in blobs).encode())
        _write_tree(cpio, tree)
        cpio.close()
    os.replace(tmp, out)
    return out


def _write_tree(cpio: CpioWriter, tree: tuple[TreeEntry, ...]) -> None:
    if not tree:
        return
    cpio.directory("pyroot", 0o755)
    for e in tree:  # sorted by path: a directory comes before what it holds
        where = f"pyroot{e.path}"
        if e.kind == "dir":
            cpio.directory(where, e.mode, e.mtime)
        elif e.kind == "link":
            cpio.symlink(where, e.target)
        else:
            cpio.file(where, Path(e.path).read_bytes(), e.mode, e.mtime)
