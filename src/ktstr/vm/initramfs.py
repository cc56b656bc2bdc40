"""The initramfs: busybox, the 9p/overlay modules, the agent's Python, and /init.

/init starts loading the modules in the background and execs the host's
Python as PID 1, straight from the initramfs: the interpreter and every module
the agent imports are in it at their real paths (see ktstr.vm.pyroot), so
start-up reads RAM, not 9p. The agent waits for the modules before its hello.
The host root is mounted only once the agent has its orders
(`ktstr.guest.init.enter_host_root`): a mounted 9p export blocks migration,
and the guest must be savable while it waits (see ktstr.vm.snapshot). The
image is cached by the hash of everything in it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ktstr.atomicfile import atomic_write
from ktstr.errors import HostSetupError
from ktstr.protocol import MODULES_FAILED, MODULES_LOADED
from ktstr.settings import settings
from ktstr.vm.cpio import CpioWriter
from ktstr.vm.pyroot import TreeEntry

#: busybox and its applets live apart from the mirrored host tree, whose /bin or /lib
#: may be symlinks (Debian's merged /usr) that a directory of ours must not collide with.
TOOLS = "ktstr"

INIT_SCRIPT = f"""#!/{TOOLS}/busybox sh
# ktstr /init: modules (in the background), then the agent's Python as PID 1, from RAM.
/{TOOLS}/busybox mkdir -p /{TOOLS}/bin
/{TOOLS}/busybox --install -s /{TOOLS}/bin
export PATH=/{TOOLS}/bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
fail() {{
    echo "ktstr-init: $*" > /dev/kmsg
    poweroff -f
}}
# The modules serve only what comes after the agent's hello (the host root, the
# scratch disk): they load in the background, on another vCPU, while Python starts
# (measured: the hello ~0.5 s sooner with 2 vCPUs), and the agent waits for
# {MODULES_LOADED} before its hello (ktstr.guest.init.wait_for_modules). Its
# stdin is the list, not the /dev/null a background job gets: /dev is unmounted below.
(
while read -r m; do
    insmod "/modules/$m" 2> /modules/insmod.err || {{
        echo "insmod $m failed: $(cat /modules/insmod.err)" > {MODULES_FAILED}; exit 1; }}
done
: > {MODULES_LOADED}
) < /modules/load-order &
PY=
for x in $(cat /proc/cmdline); do
    case "$x" in ktstr.python=*) PY="${{x#ktstr.python=}}";; esac
done
[ -n "$PY" ] || fail "no ktstr.python= on the kernel command line"
umount /proc /dev
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# UTF-8 mode: the C locale would send Python looking for an ascii codec that the
# tree does not carry (only what the agent imports on the host is in it).
export HOME=/root LANG=C.UTF-8 PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
exec "$PY" -m ktstr.guest
"""

BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))


def find_busybox() -> Path:
    """A statically linked busybox: the initramfs has no libc to offer a dynamic one."""
    override = settings().busybox  # KTSTR_BUSYBOX
    candidates = [override] if override else list(BUSYBOX_CANDIDATES)
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
    """The initramfs holding busybox, `modules` (in load order), /init and `tree`
    at its real paths (see ktstr.vm.pyroot); cached under a hash of all of it."""
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
        os.utime(out)  # recently used: kept by _prune
        return out
    with atomic_write(out, binary=True) as f:
        cpio = CpioWriter(f)
        for d in (TOOLS, "proc", "sys", "dev", "mnt", "modules"):
            cpio.mkdir(d)
        cpio.file(f"{TOOLS}/busybox", busybox, 0o755)
        cpio.file("init", INIT_SCRIPT.encode(), 0o755)
        for name, data in blobs:
            cpio.file(f"modules/{name}", data)
        cpio.file("modules/load-order", "".join(f"{n}\n" for n, _ in blobs).encode())
        _write_tree(cpio, tree)
        cpio.close()
    _prune(cache_dir)
    return out


#: Every change to the agent's code makes a new image (~40 MB): keep the recently used.
KEEP = 8


def _prune(cache_dir: Path) -> None:
    images = sorted(cache_dir.glob("initramfs-*.cpio"), key=_mtime, reverse=True)
    for old in images[KEEP:]:
        old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed by a parallel run's _prune
        return 0.0


def _write_tree(cpio: CpioWriter, tree: tuple[TreeEntry, ...]) -> None:
    for e in tree:  # sorted by path: a directory comes before what it holds
        where = e.path.lstrip("/")
        if e.kind == "dir":
            cpio.directory(where, e.mode, e.mtime)
        elif e.kind == "link":
            cpio.symlink(where, e.target)
        else:
            cpio.file(where, Path(e.path).read_bytes(), e.mode, e.mtime)
