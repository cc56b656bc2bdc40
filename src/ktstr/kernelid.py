"""Kernel identifiers: the strings of `--kernel SPEC` and of a scheduler's `kernels` filter.

A spec parses into one class per variant:

- `KernelVersion("7.2.13")`, `KernelVersion("7.2")`: a version (`MAJOR.MINOR[.PATCH][-rcN]`);
- `KernelRange("6.14", "7.0", ...)`: `START..END` or `START..=END`, both inclusive;
- `KernelGit(url, ref)`: `git+URL#REF`;
- `KernelPath("../linux")`: anything with a `/` or starting with `.` or `~`;
- `KernelCacheKey("7.2.13+deb14-amd64")`: anything else (a cache entry's name).

A sweep's kernel list is made of `KernelEntry`s: what the operator typed (`raw`, or the
auto-discovered kernel's key when `--kernel` is omitted) and the kernel it resolved to.
`matches(kernel_id, entry)` is the per-scheduler filter of the verifier sweep:

- a version matches an entry whose raw label equals it, whose cache key equals it, or
  whose kernel release it names the way `--kernel` does (`7.2` matches release
  `7.2.13+deb14-amd64`, `7.20` does not);
- a range matches an entry whose version (the release's leading `MAJOR.MINOR.PATCH`)
  lies inside `[start, end]` compared with `decompose_version` (a missing patch is 0, a
  release sorts above its own `-rcN`): `6.14..7.2` therefore stops at 7.2.0; write
  `..7.2.999` to take in the 7.2 stable series;
- paths, cache keys and git specs match by label equality (the raw label, or the cache
  key, which is the absolute path for a kernel given by path).

Unsupported here: git kernels as `--kernel` values (ktstr cannot build one from a URL);
a `git+` filter still matches an entry whose raw label is the same string.

A bottom definition: it imports nothing of ktstr but its errors. What it reads of a
resolved kernel is `ResolvedKernel` (ktstr.vm.kernel.Kernel is one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ktstr.errors import ConfigError

_RC_NONE = 2**64 - 1  # a release sorts above every -rcN of the same MAJOR.MINOR.PATCH
_LEADING_VERSION = re.compile(r"^(\d+\.\d+(?:\.\d+)?)(-rc\d+)?")


def decompose_version(s: str) -> tuple[int, int, int, int] | None:
    """`MAJOR[.MINOR[.PATCH]][-rcN]` as a comparable (major, minor, patch, rc); None if not
    a version. A missing minor or patch is 0; a missing rc sorts above every rc."""
    version, sep, rc_text = s.partition("-rc")
    if sep and not rc_text.isdigit():
        return None
    rc = int(rc_text) if sep else _RC_NONE
    parts = version.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        return None
    major, minor, patch = (int(p) for p in [*parts, "0", "0"][:3])
    return major, minor, patch, rc


def matches_version(kernel_version: str, wanted: str | None) -> bool:
    """`wanted` is the version or a prefix ending at a component boundary ("7.2", not "7.20")."""
    if wanted is None or kernel_version == wanted:
        return True
    return (kernel_version.startswith(wanted)
            and not kernel_version[len(wanted)].isdigit())


class ResolvedKernel(Protocol):
    """What a kernel filter reads of a kernel a spec resolved to."""

    @property
    def key(self) -> str: ...  # the cache key, or the absolute path of a kernel by path

    @property
    def version(self) -> str: ...  # the kernel release, e.g. "7.2.13+deb14-amd64"


@dataclass(frozen=True, slots=True)
class KernelVersion:
    """A kernel version spec: `MAJOR.MINOR[.PATCH][-rcN]`."""

    version: str

    def __str__(self) -> str:
        return self.version


@dataclass(frozen=True, slots=True)
class KernelRange:
    """A kernel range spec: `START..END` or `START..=END`, both inclusive."""

    start: str
    end: str
    inclusive_syntax: bool = False  # written `..=`; both forms include the end

    def __str__(self) -> str:
        return f"{self.start}..{'=' if self.inclusive_syntax else ''}{self.end}"


@dataclass(frozen=True, slots=True)
class KernelPath:
    """A kernel path spec: anything with a `/` or starting with `.` or `~`."""

    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class KernelCacheKey:
    """A kernel cache spec: any other string, a cache entry's name."""

    key: str

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class KernelGit:
    """A git kernel spec: `git+URL#REF`."""

    url: str
    ref: str

    def __str__(self) -> str:
        return f"git+{self.url}#{self.ref}"


KernelId = KernelVersion | KernelRange | KernelPath | KernelCacheKey | KernelGit


def parse_kernel_id(spec: str) -> KernelId:
    """The variant `spec` spells; ConfigError for an empty spec, a git spec without
    `#REF`, or a range whose ends are not versions or are inverted."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"kernel spec {spec!r} is empty; hint: a version (7.2.13), a range "
                          "(6.14..7.2), a cache key, a path or git+URL#REF")
    spec = spec.strip()
    if spec.startswith("git+"):
        url, sep, ref = spec[4:].partition("#")
        if not sep or not url or not ref:
            raise ConfigError(f"kernel spec {spec!r}: a git kernel needs a ref; "
                              "hint: git+URL#REF, e.g. git+https://host/linux.git#v7.2")
        return KernelGit(url, ref)
    if ".." in spec and "/" not in spec:
        return _parse_range(spec)
    if decompose_version(spec) is not None:
        return KernelVersion(spec)
    if "/" in spec or spec.startswith((".", "~")):
        return KernelPath(spec)
    return KernelCacheKey(spec)


def _parse_range(spec: str) -> KernelRange:
    inclusive = "..=" in spec
    start, _, end = spec.partition("..=" if inclusive else "..")
    lo, hi = decompose_version(start), decompose_version(end)
    if lo is None or hi is None:
        raise ConfigError(f"kernel range {spec!r}: both ends must be versions "
                          "(MAJOR.MINOR[.PATCH][-rcN]); hint: e.g. 6.14..7.2")
    if lo > hi:
        raise ConfigError(f"kernel range {spec!r} is inverted: {start} is above {end}; "
                          f"hint: {end}..{start}")
    return KernelRange(start, end, inclusive)


@dataclass(frozen=True, slots=True)
class KernelEntry:
    """One kernel of a sweep: as the operator named it (`raw`) and as it resolved."""

    raw: str
    kernel: ResolvedKernel

    @property
    def label(self) -> str:
        """The sanitized label: the cache key (an absolute path for a kernel by path)."""
        return self.kernel.key

    @property
    def version(self) -> tuple[int, int, int, int] | None:
        """The release's leading version (7.2.13 of 7.2.13+deb14-amd64), else the raw one."""
        m = _LEADING_VERSION.match(self.kernel.version)
        if m is not None:
            return decompose_version(m.group(1) + (m.group(2) or ""))
        return decompose_version(self.raw)


def matches(kid: KernelId, entry: KernelEntry) -> bool:
    """Whether a scheduler whose `kernels` holds `kid` is verified on `entry`."""
    if isinstance(kid, KernelVersion):
        return (kid.version in (entry.raw, entry.label)
                or matches_version(entry.kernel.version, kid.version))
    if isinstance(kid, KernelRange):
        v = entry.version
        lo, hi = decompose_version(kid.start), decompose_version(kid.end)
        return v is not None and lo is not None and hi is not None and lo <= v <= hi
    if isinstance(kid, KernelPath):
        resolved = str(Path(kid.path).expanduser().resolve())
        return entry.raw == kid.path or entry.label in (kid.path, resolved)
    if isinstance(kid, KernelCacheKey):
        return kid.key in (entry.raw, entry.label)
    return str(kid) in (entry.raw, entry.label)


def kernel_filter_accepts(kernels: tuple[str, ...], entry: KernelEntry) -> bool:
    """A scheduler's `kernels` filter: empty accepts every entry, else any one match."""
    return not kernels or any(matches(parse_kernel_id(k), entry) for k in kernels)
