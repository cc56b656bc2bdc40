"""Kernels a VM can boot: the cache of fetched kernels, and `--kernel` specs.

A cached kernel is a directory `<cache>/kernels/<key>/` holding `vmlinuz` (the bzImage),
`config`, `vmlinux` (the ELF inside the bzImage; its `.BTF` section is what schedulers
build against and what the host-side monitor reads types from), `modules/` (the
decompressed modules the initramfs loads, plus `load-order`) and `kernel.json` (where it
came from and when). The key is the kernel release, e.g. `7.2.13+deb14-amd64`. Entries
appear atomically (written in a temporary directory, then renamed), and one lock file in
the cache serialises fetches and cleans across processes.

`resolve_kernel(spec)` turns what a user passes as `--kernel` into a `Kernel`: nothing
(the newest cached), a version prefix or cache key, a bzImage file or a built tree.
Fetching from Debian is in `kernel_fetch` (`fetch_kernel`), which builds on this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from ktstr.errors import KernelError
from ktstr.kernelid import matches_version
from ktstr.settings import settings
from ktstr.vm import hostkaslr, kmod
from ktstr.vm.bzimage import check_bzimage, image_version
from ktstr.vm.debian import version_key

log = logging.getLogger(__name__)

METADATA = "kernel.json"
LOCK_FILE = ".lock"
TEMP_PREFIX = ".tmp-"  # entries being written; dot-names are never kernels
FETCH_HINT = "hint: run `ktstr kernel fetch` (or pass --kernel PATH to a bzImage or built tree)"


@dataclass(frozen=True)
class Kernel:
    """A bootable kernel: its image and, where known, its config, modules and vmlinux."""

    key: str  # the cache key, or the absolute path for a kernel given by path
    version: str  # the kernel release, e.g. "7.2.13+deb14-amd64"
    image: Path  # bzImage
    config: Path | None
    modules_dir: Path | None
    vmlinux: Path | None

    def config_value(self, option: str) -> str | None:
        """`CONFIG_X` -> "y", "m", its value (quotes removed), or None when unset/unknown."""
        if self.config is None:
            return None
        name = option if option.startswith("CONFIG_") else "CONFIG_" + option
        return read_config(self.config).get(name)

    @property
    def has_sched_ext(self) -> bool:
        return self.config_value("CONFIG_SCHED_CLASS_EXT") == "y"

    def boot_image(self, *, kaslr: bool = True) -> Path:
        """What qemu's -kernel gets: the bzImage, whose decompressor randomizes where the
        kernel lands (KASLR, as on real machines), or without KASLR the uncompressed
        vmlinux when the kernel can PVH-boot.

        PVH enters the ELF directly, skipping the in-guest decompression (measured
        here: ~2 s less from qemu start to the agent under TCG), and with it the
        image's randomization: only the direct map would still move. Most runs restore
        a snapshot of a booted guest, so the bzImage's cost falls on its first boot.
        """
        if not kaslr and self.vmlinux is not None and self.config_value("CONFIG_PVH") == "y":
            return self.vmlinux
        return self.image

    def host_kaslr_image(self) -> Path | None:
        """The vmlinux the host can relocate per boot and PVH-boot (ktstr.vm.hostkaslr),
        or None (the bzImage then boots): it needs CONFIG_PVH, CONFIG_RANDOMIZE_BASE and
        the relocation table the vmlinux taken from the bzImage carries."""
        if (self.vmlinux is None or self.config_value("CONFIG_PVH") != "y"
                or self.config_value("CONFIG_RANDOMIZE_BASE") != "y"):
            return None
        try:
            hostkaslr.load_image(self.vmlinux)
        except (KernelError, OSError) as err:
            log.info("kernel %s boots its bzImage for KASLR: its vmlinux cannot be "
                     "relocated by the host (%s)", self.key, err)
            return None
        return self.vmlinux

    def vm_modules(self) -> list[Path]:
        """The `.ko` files the guest's initramfs loads, in load order ([] when none).

        A cached kernel lists them in `modules/load-order`; for a built tree they are
        worked out from its config, `modules.builtin` and each module's `depends=`.
        """
        if self.modules_dir is None:
            return []
        if (self.modules_dir / kmod.LOAD_ORDER).exists():
            return kmod.read_load_order(self.modules_dir)
        wanted = [name for name in kmod.wanted_modules(self.config_value)
                  if self.config_value(kmod.ALL_MODULES[name]) == "m"]
        index = kmod.index_modules(self.modules_dir)
        order = kmod.load_order(wanted, index, kmod.read_builtin(self.modules_dir))
        return [index[name] for name, _ in order]

    @property
    def drives_scratch_disk(self) -> bool:
        """Whether the guest can use the scratch disk: virtio_blk built in, or loaded
        by the initramfs (a kernel cached before the scratch disk existed lacks it)."""
        if self.config_value("CONFIG_VIRTIO_BLK") == "y":
            return True
        return any(kmod.module_name(m) == "virtio_blk" for m in self.vm_modules())


def read_config(path: Path) -> dict[str, str]:
    """The set options of a kernel `.config` file (cached per file version)."""
    st = path.stat()
    return _parse_config(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _parse_config(path: str, _mtime_ns: int, _size: int) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith("CONFIG_"):
            name, _, value = line.partition("=")
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            values[name.strip()] = value.strip()
    return values


# -- the cache ---------------------------------------------------------------------------


def cache_root() -> Path:
    """ktstr's cache directory: `$KTSTR_CACHE_DIR`, else the platform's user cache dir."""
    return settings().cache_dir or Path(platformdirs.user_cache_dir("ktstr"))


def kernel_cache_root() -> Path:
    """Where cached kernels live: `<cache_root>/kernels`."""
    return cache_root() / "kernels"


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold an flock on `path` (released if the process dies); `what` names it in the log.

    Yields whether the lock is held: always True when `wait`; without `wait`, False
    at once if another process holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            log.info("waiting for another ktstr process using %s", what)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing drops the flock


@contextlib.contextmanager
def cache_lock(root: Path | None = None) -> Iterator[None]:
    """Hold the kernel cache's exclusive lock."""
    root = root or kernel_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / LOCK_FILE, f"the kernel cache {root}"):
        yield


def load_cached(entry: Path) -> Kernel | None:
    """The kernel in cache directory `entry`, or None if it is not a complete entry."""
    try:
        meta: dict[str, Any] = json.loads((entry / METADATA).read_text())
    except (OSError, ValueError):
        return None
    image = entry / "vmlinuz"
    if not image.is_file():
        return None

    def optional(name: str) -> Path | None:
        path = entry / name
        return path if path.exists() else None

    return Kernel(key=entry.name, version=str(meta.get("version", entry.name)), image=image,
                  config=optional("config"), modules_dir=optional("modules"),
                  vmlinux=optional("vmlinux"))


def read_metadata(kernel: Kernel) -> dict[str, Any]:
    """The `kernel.json` of a cached kernel ({} for a kernel given by path)."""
    try:
        data: dict[str, Any] = json.loads((kernel.image.parent / METADATA).read_text())
    except (OSError, ValueError):
        return {}
    return data


def list_kernels() -> list[Kernel]:
    """Every complete cached kernel, newest version first."""
    root = kernel_cache_root()
    if not root.is_dir():
        return []
    found = [k for p in root.iterdir()
             if not p.name.startswith(".") and p.is_dir() and (k := load_cached(p))]
    return sorted(found, key=lambda k: version_key(k.version), reverse=True)


def find_cached(spec: str) -> Kernel | None:
    """The cached kernel whose key is `spec`, else the newest whose version starts with it."""
    kernels = list_kernels()
    for k in kernels:
        if k.key == spec:
            return k
    return next((k for k in kernels if matches_version(k.version, spec)), None)


def clean_kernels(keys: Sequence[str] | None = None) -> list[str]:
    """Remove cached kernels (all of them, plus apt lists and leftovers, when `keys` is None).

    Returns the keys removed. An unknown key raises `KernelError` before anything is removed.
    """
    root = kernel_cache_root()
    if not root.is_dir():
        if keys:
            raise KernelError(f"no cached kernel {keys[0]!r}: the cache {root} is empty; "
                              "hint: `ktstr kernel list` shows what is cached")
        return []
    with cache_lock(root):
        cached = {k.key for k in list_kernels()}
        unknown = [k for k in keys or () if k not in cached]
        if unknown:
            raise KernelError(f"no cached kernel {unknown[0]!r} (cached: "
                              f"{', '.join(sorted(cached)) or 'none'}); hint: `ktstr kernel "
                              "list` shows the keys")
        removed = sorted(cached) if keys is None else list(dict.fromkeys(keys))
        doomed = [root / k for k in removed]
        if keys is None:
            doomed += [p for p in root.iterdir() if p.is_dir() and p.name.startswith(".")]
        for path in doomed:
            remove_tree(path)
    return removed


def remove_tree(path: Path) -> None:
    """Remove a directory so that it vanishes at once (rename), then delete it."""
    trash = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=path.parent))
    os.rename(path, trash / "x")
    shutil.rmtree(trash)


# -- --kernel specs --------------------------------------------------------------------


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith((".", "~"))


def resolve_kernel(spec: str | None) -> Kernel:
    """The kernel `spec` names (see the module docstring); `KernelError` when none matches."""
    if spec is None:
        kernels = list_kernels()
        if not kernels:
            raise KernelError(f"no kernel given and none cached in {kernel_cache_root()}; "
                              + FETCH_HINT)
        return kernels[0]
    if not _looks_like_path(spec) and (hit := find_cached(spec)):
        return hit
    path = Path(spec).expanduser()
    if path.exists():
        return kernel_from_path(path)
    cached = ", ".join(k.key for k in list_kernels()) or "none"
    raise KernelError(f"kernel {spec!r} not found: no such file or directory, and no cached "
                      f"kernel matches (cached: {cached}); hint: run `ktstr kernel fetch "
                      f"{spec}` or pass a path to a bzImage or built kernel tree")


def kernel_from_path(path: Path) -> Kernel:
    """A kernel given by path: a bzImage file, a built kernel tree, or a cache entry."""
    path = path.resolve()
    if path.is_dir():
        if (path / METADATA).exists() and (hit := load_cached(path)):
            return hit
        image = path / "arch/x86/boot/bzImage"
        if not image.is_file():
            raise KernelError(f"{path} is not a built kernel tree (no arch/x86/boot/bzImage); "
                              "hint: run `make bzImage modules` in it, or pass the bzImage")
        data = check_bzimage(image)
        release = path / "include/config/kernel.release"
        version = (release.read_text().strip() if release.exists()
                   else image_version(data) or path.name)
        return Kernel(key=str(path), version=version, image=image,
                      config=_existing(path / ".config"),
                      modules_dir=path if (path / "modules.order").exists() else None,
                      vmlinux=_existing(path / "vmlinux"))
    data = check_bzimage(path)
    config = _existing(path.parent / "config") or _existing(path.parent / ".config")
    return Kernel(key=str(path), version=image_version(data) or path.name, image=path,
                  config=config, modules_dir=None, vmlinux=None)


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


__all__ = [
    "Kernel",
    "cache_root",
    "clean_kernels",
    "kernel_cache_root",
    "list_kernels",
    "resolve_kernel",
]
