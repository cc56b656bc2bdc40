"""The kernel source a cached Debian kernel was built from: `linux-source-<major.minor>`.

The package holds one tarball, `usr/src/linux-source-<mm>.tar.xz` (~160 MB; ~1.5 GB
unpacked). Building `tools/sched_ext` needs only a slice of it (`SOURCE_PARTS`, ~190 MB),
so only those members are extracted. The package is downloaded with the kernel fetch's
private apt state (`<kernels>/.apt`), under the kernel cache's lock that guards it, and
pinned to the Debian version of the kernel's own packages so the headers match.
"""

from __future__ import annotations

import glob
import logging
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ktstr.errors import KernelError
from ktstr.vm import debian
from ktstr.vm.kernel import Kernel, cache_lock, kernel_cache_root, read_metadata

log = logging.getLogger(__name__)

SOURCE_PREFIX = "linux-source-"
#: What `make -C tools/sched_ext` reads: directories end in "/", single files do not.
SOURCE_PARTS = ("tools/", "scripts/", "include/", "arch/x86/include/", "kernel/bpf/", "lib/",
                "Makefile")


@dataclass(frozen=True)
class SourceTree:
    """An extracted kernel source slice, and which package and version it came from."""

    root: Path
    package: str
    version: str


def source_package(kernel_version: str) -> str:
    """`7.2.13+deb14-amd64` -> `linux-source-7.2`."""
    m = re.match(r"(\d+)\.(\d+)", kernel_version)
    if m is None:
        raise KernelError(f"kernel version {kernel_version!r} does not start with "
                          "MAJOR.MINOR, so no linux-source package matches it; hint: use a "
                          "kernel fetched with `ktstr kernel fetch`")
    return f"{SOURCE_PREFIX}{m[1]}.{m[2]}"


def kernel_package_version(kernel: Kernel) -> str | None:
    """The Debian version (e.g. `7.2.13-1`) of the kernel's image package, if recorded."""
    packages = read_metadata(kernel).get("packages", {})
    version = packages.get(debian.BINARY_PREFIX + kernel.version)
    return str(version) if version else None


def wanted_member(name: str) -> str | None:
    """The path below the tarball's top directory if `name` is part of `SOURCE_PARTS`.

    Members are `linux-source-7.2/tools/...`; the top directory is dropped. Anything else
    (other directories, `..`, absolute names) gives None.
    """
    top, sep, rel = name.lstrip("./").partition("/")
    if not sep or not top or not rel or rel.startswith("/") or ".." in rel.split("/"):
        return None
    for part in SOURCE_PARTS:
        if rel == part.rstrip("/") or (part.endswith("/") and rel.startswith(part)):
            return rel
    return None


def extract_parts(tarball: Path, dest: Path) -> int:
    """Extract the `SOURCE_PARTS` of a kernel source tarball into `dest`; returns the count."""
    count = 0

    def members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        nonlocal count
        for member in tf:
            rel = wanted_member(member.name)
            if rel is not None:
                member.name = rel
                count += 1
                yield member

    try:
        with tarfile.open(tarball) as tf:
            tf.extractall(dest, members=members(tf), filter="data")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise KernelError(f"cannot extract {tarball}: {err}; hint: the download may be "
                          "truncated, run `ktstr sched build --force`") from err
    if count == 0 or not (dest / "tools/sched_ext").is_dir():
        raise KernelError(f"{tarball} holds no tools/sched_ext (extracted {count} members); "
                          "hint: the kernel source is too old for sched_ext")
    return count


class _SourceApt(debian.AptSession):
    """`AptSession` that can ask for one exact version (`apt-get download pkg=version`)."""

    def download_pinned(self, package: str, version: str | None, dest: Path) -> Path:
        if version is None:
            return self.download([package], dest)[0]
        dest.mkdir(parents=True, exist_ok=True)
        try:
            self._run(["apt-get", *self.options(), "download", f"{package}={version}"],
                      cwd=dest, what=f"download {package} {version}")
        except KernelError as err:
            raise KernelError(f"{err}\nthe kernel's source {package} {version} is not in "
                              f"{self.mirror} {self.suite} any more; hint: `ktstr kernel "
                              "fetch` the newer kernel and build for that one") from err
        debs = sorted(dest.glob(f"{glob.escape(package)}_*.deb"))
        if not debs:
            raise KernelError(f"apt-get download of {package} {version} produced no .deb in "
                              f"{dest}; hint: check the mirror serves {self.suite}")
        return debs[-1]


def fetch_source(kernel: Kernel, work: Path, *, mirror: str | None = None) -> SourceTree:
    """Download the kernel's `linux-source` package into `work` and extract the needed slice.

    The mirror and suite are the ones the kernel was fetched from (`kernel.json`) unless
    `mirror` is given; the host's apt sources are the last resort.
    """
    meta = read_metadata(kernel)
    package = source_package(kernel.version)
    pinned = kernel_package_version(kernel)
    mirror = mirror or meta.get("mirror") or debian.system_mirror()
    root = kernel_cache_root()
    with cache_lock(root):  # the private apt state is shared with `kernel fetch`
        apt = _SourceApt(root / ".apt", str(mirror), str(meta.get("suite", debian.DEFAULT_SUITE)))
        apt.update()
        deb = apt.download_pinned(package, pinned, work / "debs")
    version = debian.deb_field(deb, "Version")
    pkg_tree = work / "pkg"
    debian.extract_deb(deb, pkg_tree)
    deb.unlink()  # ~160 MB
    tarballs = sorted((pkg_tree / "usr/src").glob(SOURCE_PREFIX + "*.tar.xz"))
    if not tarballs:
        raise KernelError(f"{package} {version} has no usr/src/{SOURCE_PREFIX}*.tar.xz; "
                          "hint: the package layout changed")
    src = work / "src"
    count = extract_parts(tarballs[0], src)
    tarballs[0].unlink()
    log.info("extracted %d members of %s %s", count, package, version)
    return SourceTree(src, package, version)
