"""The kernel modules a ktstr guest needs before its root filesystem exists.

The guest's root is the host's `/` over 9p under a tmpfs overlay, so the initramfs must
load `netfs`, `9pnet`, `9pnet_virtio`, `9p` and `overlay` (unless the kernel has them
built in) plus whatever they depend on, and `virtio_blk` for the scratch disk where the
kernel builds it as a module. Dependencies come from each module's own
`.modinfo` section (`depends=a,b`, written by modpost), so no `modules.dep` or `depmod`
is needed: Debian's package ships none. Busybox `insmod` cannot read compressed modules,
so `.ko.xz`/`.ko.gz` files are decompressed here (`.ko.zst` with `zstandard`).
"""

from __future__ import annotations

import gzip
import lzma
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ktstr.errors import KernelError
from ktstr.vm.elfsections import ElfFormatError, section_bytes

#: The modules for a 9p root with an overlay, and the config option that builds each.
VM_MODULES: dict[str, str] = {
    "netfs": "CONFIG_NETFS_SUPPORT",
    "9pnet": "CONFIG_NET_9P",
    "9pnet_virtio": "CONFIG_NET_9P_VIRTIO",
    "9p": "CONFIG_9P_FS",
    "overlay": "CONFIG_OVERLAY_FS",
}

#: Modules for devices the guest can do without, loaded when the kernel has them as modules:
#: virtio_blk drives the scratch disk of the block-I/O work types (ktstr.system.blockdev).
OPTIONAL_MODULES: dict[str, str] = {
    "virtio_blk": "CONFIG_VIRTIO_BLK",
}

#: Every module ktstr may load, and the config option that builds it.
ALL_MODULES: dict[str, str] = {**VM_MODULES, **OPTIONAL_MODULES}


def wanted_modules(option: Callable[[str], str | None]) -> list[str]:
    """The modules an initramfs loads for a kernel whose config `option` reads: every
    root-filesystem module not built in, and each optional one built as a module."""
    return ([name for name, opt in VM_MODULES.items() if option(opt) != "y"]
            + [name for name, opt in OPTIONAL_MODULES.items() if option(opt) == "m"])


LOAD_ORDER = "load-order"  # file in a modules dir: one .ko name a line, dependencies first
_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def module_name(path: str | Path) -> str:
    """`kernel/fs/9p/9p.ko.xz` -> `9p`; dashes become underscores as the kernel does."""
    name = Path(path).name
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = name.removesuffix(".o")
    return name.replace("-", "_")


def read_module(path: Path) -> bytes:
    """The module's ELF bytes, decompressing `.xz`, `.gz` and `.zst` files."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    return data


def modinfo(ko: bytes) -> dict[str, str]:
    """The `key=value` strings of a module's `.modinfo` section (the first of repeated keys).

    Falls back to scanning the whole image for NUL-separated `key=value` strings when the
    ELF headers cannot be read.
    """
    try:
        blob = section_bytes(ko, ".modinfo")
    except (ElfFormatError, ValueError):
        blob = None
    if blob is None:
        blob = ko
    info: dict[str, str] = {}
    for entry in blob.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key.isascii() and key.replace(b"_", b"").isalnum():
            info.setdefault(key.decode(), value.decode("utf-8", "replace"))
    return info


def module_depends(ko: bytes) -> list[str]:
    """Names of the modules `ko` needs loaded first (`depends=` of `.modinfo`)."""
    deps = modinfo(ko).get("depends", "")
    return [module_name(d) for d in deps.split(",") if d]


def index_modules(modules_dir: Path, order_file: str = "modules.order") -> dict[str, Path]:
    """Module name -> file, from `modules.order` (paths relative to `modules_dir`).

    Works for an installed tree (`kernel/fs/9p/9p.ko` with `.ko.xz` on disk) and a built
    source tree (`fs/9p/9p.o` or `.ko` entries, `.ko` files beside them).
    """
    index: dict[str, Path] = {}
    order = modules_dir / order_file
    if not order.exists():
        return index
    for line in order.read_text().split():
        stem = line.removesuffix(".o").removesuffix(".ko")
        for suffix in _SUFFIXES:
            candidate = modules_dir / (stem + suffix)
            if candidate.exists():
                index.setdefault(module_name(line), candidate)
                break
    return index


def read_builtin(modules_dir: Path) -> frozenset[str]:
    """Names of the modules built into the kernel image (`modules.builtin`), if listed."""
    path = modules_dir / "modules.builtin"
    if not path.exists():
        return frozenset()
    return frozenset(module_name(line) for line in path.read_text().split())


def load_order(wanted: Iterable[str], index: Mapping[str, Path],
               builtin: frozenset[str] = frozenset()) -> list[tuple[str, bytes]]:
    """The modules `wanted` needs, dependencies first, as (name, decompressed ELF bytes).

    Built-in modules are skipped. A module neither built in nor found in `index` raises
    `KernelError`, as does a dependency cycle (modpost never writes one).
    """
    done: dict[str, bytes] = {}
    visiting: set[str] = set()

    def visit(name: str, needed_by: str | None) -> None:
        if name in done or name in builtin:
            return
        if name in visiting:
            raise KernelError(f"module dependency cycle through {name}; hint: the modules "
                              "do not come from one kernel build")
        path = index.get(name)
        if path is None:
            why = f" (needed by {needed_by})" if needed_by else ""
            raise KernelError(f"kernel module {name}{why} is neither built in nor present "
                              "in the module tree; hint: build the kernel with "
                              f"{ALL_MODULES.get(name, 'it')}=y or =m")
        visiting.add(name)
        ko = read_module(path)
        for dep in module_depends(ko):
            visit(dep, name)
        visiting.discard(name)
        done[name] = ko

    for name in wanted:
        visit(module_name(name), None)
    return list(done.items())


def install_modules(modules: list[tuple[str, bytes]], dest: Path) -> list[Path]:
    """Write `<name>.ko` files and the `load-order` list into `dest`; returns the .ko paths."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, ko in modules:
        path = dest / f"{name}.ko"
        path.write_bytes(ko)
        paths.append(path)
    (dest / LOAD_ORDER).write_text("".join(p.name + "\n" for p in paths))
    return paths


def read_load_order(modules_dir: Path) -> list[Path]:
    """The `.ko` paths a `load-order` file lists, in order."""
    return [modules_dir / name for name in (modules_dir / LOAD_ORDER).read_text().split()]
