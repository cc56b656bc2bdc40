"""Fetching a Debian kernel into the kernel cache (`ktstr kernel fetch`).

Steps, all under the cache lock: refresh a private copy of the mirror's `sid` package
lists, pick the newest generic amd64 kernel (or the one asked for), download its base
package first (small: it holds `config`) to check `CONFIG_SCHED_CLASS_EXT`, then the
image and modules packages, unpack them, and build the cache entry in a temporary
directory that is renamed into place. The `.deb` files (the modules package is ~110 MB)
and the unpacked tree are deleted once the entry exists; the package lists are kept in
`<kernels>/.apt` so the next fetch only downloads what changed. Fetching a kernel that is
cached already adds the modules a newer ktstr loads and its entry lacks
(`add_missing_modules`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktstr.atomicfile import atomic_write
from ktstr.errors import KernelError
from ktstr.vm import debian, kmod
from ktstr.vm.bzimage import check_bzimage, extract_vmlinux
from ktstr.vm.elfsections import sections
from ktstr.vm.kernel import (
    METADATA,
    TEMP_PREFIX,
    Kernel,
    cache_lock,
    find_cached,
    kernel_cache_root,
    load_cached,
    read_config,
)

log = logging.getLogger(__name__)

SCHED_EXT = "CONFIG_SCHED_CLASS_EXT"


@dataclass
class _Unpacked:
    """One kernel's packages unpacked under `tree`."""

    version: str
    tree: Path
    packages: dict[str, str] = field(default_factory=dict)  # package -> Debian version

    @property
    def moddir(self) -> Path:
        return self.tree / "usr/lib/modules" / self.version

    def find(self, *candidates: str) -> Path:
        for rel in candidates:
            path = self.tree / rel.format(v=self.version)
            if path.is_file():
                return path
        raise KernelError(f"kernel {self.version}: none of {', '.join(candidates)} in its "
                          "packages; hint: the package layout changed, pass --kernel PATH")


def fetch_kernel(version: str | None = None, *, mirror: str | None = None) -> Kernel:
    """Fetch Debian unstable's newest generic kernel (or `version`) into the cache.

    Returns the cached kernel at once when `version` is already cached. With no version,
    the newest generic kernel that has CONFIG_SCHED_CLASS_EXT=y is chosen.
    """
    if version is not None and (hit := find_cached(version)):
        return add_missing_modules(hit, mirror=mirror)
    root = kernel_cache_root()
    with cache_lock(root):
        hit = find_cached(version) if version is not None else None
        if hit is None:  # else another process fetched it while we waited
            _remove_leftovers(root)
            key = _fetch_locked(root, version, mirror or debian.system_mirror())
    if hit is not None:
        return add_missing_modules(hit, mirror=mirror)
    kernel = load_cached(root / key)
    if kernel is None:
        raise KernelError(f"cache entry {root / key} is incomplete after the fetch; "
                          f"hint: `ktstr kernel clean {key}` and fetch again")
    return add_missing_modules(kernel, mirror=mirror)


def missing_modules(kernel: Kernel) -> list[str]:
    """Modules this ktstr loads that `kernel`'s cache entry, made by an older one, lacks."""
    if kernel.modules_dir is None or not (kernel.modules_dir / kmod.LOAD_ORDER).exists():
        return []
    have = {kmod.module_name(m) for m in kernel.vm_modules()}
    return [n for n in kmod.wanted_modules(kernel.config_value)
            if n not in have and kernel.config_value(kmod.ALL_MODULES[n]) == "m"]


def add_missing_modules(kernel: Kernel, *, mirror: str | None = None) -> Kernel:
    """Bring a cached Debian kernel's modules up to what this ktstr loads (the scratch
    disk's virtio_blk came after the first entries were made): download its base
    and modules packages again and add the missing ones to `modules/` and its load order. The
    entry's other files (image, vmlinux, built schedulers) are left alone."""
    meta_path = kernel.image.parent / METADATA
    meta: dict[str, Any] = json.loads(meta_path.read_text())
    if not missing_modules(kernel) or meta.get("source") != "debian":
        return kernel
    root = kernel_cache_root()
    with cache_lock(root):
        missing = missing_modules(kernel)  # another process may have added them meanwhile
        if not missing:
            return kernel
        assert kernel.modules_dir is not None
        apt = debian.AptSession(root / ".apt", mirror or meta.get("mirror")
                                or debian.system_mirror())
        apt.update()
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=root) as tmp:
            unpacked = _Unpacked(kernel.version, Path(tmp) / "tree")
            _, base, modules = debian.package_names(kernel.version)  # base: modules.order
            for deb in apt.download([base, modules], Path(tmp) / "debs"):
                debian.extract_deb(deb, unpacked.tree)
                deb.unlink()
            have = frozenset(kmod.module_name(m) for m in kernel.vm_modules())
            added = kmod.load_order(missing, kmod.index_modules(unpacked.moddir),
                                    kmod.read_builtin(unpacked.moddir) | have)
        order = [m.name for m in kernel.vm_modules()]
        for name, ko in added:
            (kernel.modules_dir / f"{name}.ko").write_bytes(ko)
            order.append(f"{name}.ko")
        with atomic_write(kernel.modules_dir / kmod.LOAD_ORDER) as f:
            f.write("".join(f"{n}\n" for n in order))
        meta["modules"] = [kmod.module_name(n) for n in order]
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        log.info("kernel %s: added modules %s", kernel.key, ", ".join(n for n, _ in added))
    return kernel


def _remove_leftovers(root: Path) -> None:
    """Delete temporary directories of fetches that died (safe: we hold the lock)."""
    for path in root.glob(TEMP_PREFIX + "*"):
        shutil.rmtree(path, ignore_errors=True)


def _fetch_locked(root: Path, wanted: str | None, mirror: str) -> str:
    apt = debian.AptSession(root / ".apt", mirror)
    started = time.monotonic()
    apt.update()
    names = apt.pkgnames(debian.BINARY_PREFIX)
    candidates = debian.generic_kernel_versions(names, wanted)
    if not candidates:
        available = ", ".join(debian.generic_kernel_versions(names)) or "none"
        what = f"matching {wanted!r}" if wanted else "at all"
        raise KernelError(f"no generic {debian.ARCH} kernel {what} in {mirror} suite "
                          f"{apt.suite} (available: {available}); hint: `ktstr kernel fetch` "
                          "without a version takes the newest")
    for version in candidates:
        if (root / version / METADATA).exists():
            return version
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=root) as tmp:
            work = Path(tmp)
            unpacked = _download(apt, version, work, require_sched_ext=wanted is None)
            if unpacked is None:
                continue
            entry = work / "entry"
            meta = {"source": "debian", "mirror": mirror, "suite": apt.suite,
                    "packages": unpacked.packages}
            build_entry(unpacked, entry, meta)
            target = root / version
            if target.exists():  # an incomplete entry: no metadata, checked above
                shutil.rmtree(target)
            os.rename(entry, target)
            log.info("cached kernel %s in %.1f s", version, time.monotonic() - started)
            return version
    raise KernelError(f"none of the generic kernels in {mirror} {apt.suite} "
                      f"({', '.join(candidates)}) has {SCHED_EXT}=y; hint: `ktstr kernel "
                      "fetch VERSION` fetches one anyway (EEVDF tests only)")


def _download(apt: debian.AptSession, version: str, work: Path, *,
              require_sched_ext: bool) -> _Unpacked | None:
    """Download and unpack one kernel's packages; None if it lacks sched_ext when required."""
    binary, base, modules = debian.package_names(version)
    unpacked = _Unpacked(version, work / "tree")
    for pkgs in ([base], [binary, modules]):
        for deb in apt.download(pkgs, work / "debs"):
            unpacked.packages[deb.name.split("_", 1)[0]] = debian.deb_field(deb, "Version")
            debian.extract_deb(deb, unpacked.tree)
            deb.unlink()  # the modules package alone is ~110 MB
        if pkgs == [base] and require_sched_ext:
            config = unpacked.find("usr/lib/modules/{v}/config", "boot/config-{v}")
            if read_config(config).get(SCHED_EXT) != "y":
                log.info("skipping kernel %s: %s is not =y", version, SCHED_EXT)
                return None
    return unpacked


def build_entry(unpacked: _Unpacked, entry: Path, meta: dict[str, Any]) -> None:
    """Write a cache entry (vmlinuz, config, vmlinux, modules/, kernel.json) into `entry`."""
    entry.mkdir(parents=True)
    image = unpacked.find("usr/lib/modules/{v}/vmlinuz.unsigned", "usr/lib/modules/{v}/vmlinuz",
                          "boot/vmlinuz-{v}")
    config = unpacked.find("usr/lib/modules/{v}/config", "boot/config-{v}")
    data = check_bzimage(image)
    shutil.copyfile(image, entry / "vmlinuz")
    shutil.copyfile(config, entry / "config")
    options = read_config(entry / "config")

    vmlinux_btf: bool | None = None
    try:
        vmlinux = extract_vmlinux(data)
    except KernelError as err:
        log.warning("kernel %s: %s", unpacked.version, err)
    else:
        (entry / "vmlinux").write_bytes(vmlinux)
        vmlinux_btf = ".BTF" in sections(vmlinux)

    wanted = kmod.wanted_modules(options.get)
    builtin = kmod.read_builtin(unpacked.moddir)
    modules = kmod.load_order(wanted, kmod.index_modules(unpacked.moddir), builtin)
    kmod.install_modules(modules, entry / "modules")

    meta = {
        "key": unpacked.version,
        "version": unpacked.version,
        **meta,
        "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "vmlinuz_sha256": hashlib.sha256(data).hexdigest(),
        "sched_ext": options.get(SCHED_EXT) == "y",
        "vmlinux_btf": vmlinux_btf,
        "modules": [name for name, _ in modules],
    }
    (entry / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
