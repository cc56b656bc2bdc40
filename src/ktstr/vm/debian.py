"""Debian's kernel packages through apt, without touching the system's apt state.

Three parts: finding the Debian mirror the host already uses (apt's sources, one-line
`.list` and deb822 `.sources` formats), choosing the newest generic kernel from package
names (Debian version ordering, implemented here as dpkg defines it), and `AptSession`,
which runs `apt-get update`/`download` against a private sources list, lists directory
and cache, so the host's own package lists, cache and installed-package state are never
read or written. Package files are unpacked with `dpkg-deb -x`.

Only Debian's archive is supported (suite `sid` by default; the kernels with
`CONFIG_SCHED_CLASS_EXT` live there); Ubuntu's kernel packages are split differently.
"""

from __future__ import annotations

import functools
import glob
import logging
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktstr.errors import HostSetupError, KernelError
from ktstr.kernelid import matches_version

log = logging.getLogger(__name__)

DEFAULT_SUITE = "sid"
ARCH = "amd64"
ARCHIVE_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

#: Suites (without `-updates`/`-backports` suffixes) that only the Debian archive serves.
DEBIAN_SUITES = frozenset({
    "buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid", "experimental",
    "oldoldstable", "oldstable", "stable", "testing", "unstable",
})
_URI_SCHEMES = ("http://", "https://", "ftp://", "file:", "mirror+", "mirror:", "tor+")

# -- the mirror the host uses -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AptSource:
    """One (type, URI, suite) triple out of the host's apt sources."""

    type: str
    uri: str
    suite: str
    origin: Path  # the file it came from, for messages


def parse_one_line_sources(text: str, origin: Path) -> list[AptSource]:
    """Parse the one-line format: `deb [opt=val ...] URI suite [component ...]`."""
    out: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # options may contain spaces inside [ ]
        fields = line.split()
        if len(fields) >= 3:
            out.append(AptSource(fields[0], fields[1], fields[2], origin))
    return out


def parse_deb822_sources(text: str, origin: Path) -> list[AptSource]:
    """Parse deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Enabled:`), blank-line separated."""
    out: list[AptSource] = []
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t"):  # continuation (e.g. an inline Signed-By key)
                if key:
                    fields[key] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for typ in fields.get("types", "").split():
            for uri in fields.get("uris", "").split():
                out.extend(AptSource(typ, uri, suite, origin)
                           for suite in fields.get("suites", "").split())
    return out


def read_apt_sources(etc: Path = Path("/etc/apt")) -> list[AptSource]:
    """Every source of the host, in the order apt reads them (sources.list, then parts by name)."""
    files = [etc / "sources.list"]
    parts = etc / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    out: list[AptSource] = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        parse = parse_deb822_sources if path.suffix == ".sources" else parse_one_line_sources
        out += parse(text, path)
    return out


def is_debian_archive(src: AptSource) -> bool:
    """True for a binary source of the main Debian archive (not security, not a third party)."""
    base = src.suite.split("-", 1)[0].split("/", 1)[0]
    return (src.type == "deb" and base in DEBIAN_SUITES
            and not src.suite.endswith("-security")
            and "debian-security" not in src.uri
            and src.uri.startswith(_URI_SCHEMES))


def system_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The URI of the first Debian archive among the host's apt sources."""
    for src in read_apt_sources(etc):
        if is_debian_archive(src):
            log.debug("using Debian mirror %s (from %s)", src.uri, src.origin)
            return src.uri
    raise KernelError(f"no Debian archive mirror in the apt sources under {etc} "
                      "(looked for a `deb` source serving a Debian suite such as bookworm or "
                      "sid); hint: pass --mirror URL naming a Debian archive mirror "
                      "(the URL that ends in /debian)")


# -- Debian version ordering (dpkg's algorithm) ---------------------------------------


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_fragment(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate non-digit runs (by `_order`) and digit runs (numerically)."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split_version(v: str) -> tuple[int, str, str]:
    epoch, sep, rest = v.partition(":")
    if not sep:
        epoch, rest = "0", v
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    return int(epoch or 0), upstream, revision


def compare_versions(a: str, b: str) -> int:
    """Compare two Debian versions: <0, 0, >0 as `dpkg --compare-versions` orders them."""
    ea, ua, ra = _split_version(a)
    eb, ub, rb = _split_version(b)
    if ea != eb:
        return ea - eb
    return _compare_fragment(ua, ub) or _compare_fragment(ra, rb)


def version_key(v: str) -> Any:
    """A sort key ordering strings by `compare_versions`."""
    return _cmp_key(v)


_cmp_key = functools.cmp_to_key(compare_versions)


# -- choosing a kernel from package names -----------------------------------------------

BINARY_PREFIX = "linux-binary-unsigned-"


def package_names(kernel_version: str) -> tuple[str, str, str]:
    """The three packages one kernel needs: image, base files (config, maps), modules."""
    return (BINARY_PREFIX + kernel_version, "linux-base-" + kernel_version,
            "linux-modules-" + kernel_version)


def is_generic_flavour(kernel_version: str, arch: str = ARCH) -> bool:
    """True for `<abi>-amd64` (the generic flavour), False for `<abi>-cloud-amd64`, `-rt-` etc.

    The ABI part always holds a digit (`7.2.13+deb14`, or `6.1.0-18` in the older
    scheme); a named flavour (`cloud`, `rt`) does not.
    """
    parts = kernel_version.split("-")
    return len(parts) >= 2 and parts[-1] == arch and any(c.isdigit() for c in parts[-2])


def generic_kernel_versions(pkgnames: Iterable[str], wanted: str | None = None) -> list[str]:
    """Kernel versions of generic `linux-binary-unsigned-*` packages, newest first."""
    versions = {name[len(BINARY_PREFIX):] for name in pkgnames if name.startswith(BINARY_PREFIX)}
    chosen = [v for v in versions if is_generic_flavour(v) and matches_version(v, wanted)]
    # Compare the ABI part only: "-amd64" is common to all of them.
    return sorted(chosen, key=lambda v: version_key(v.rsplit("-", 1)[0]), reverse=True)


# -- apt with a private state -----------------------------------------------------------


class AptSession:
    """apt-get/apt-cache against one mirror and suite, with all state under `state_dir`."""

    def __init__(self, state_dir: Path, mirror: str, suite: str = DEFAULT_SUITE) -> None:
        self.state_dir = state_dir
        self.mirror = mirror
        self.suite = suite
        self.sources = state_dir / "sources.list"

    def options(self) -> list[str]:
        lists, cache = self.state_dir / "lists", self.state_dir / "cache"
        none = self.state_dir / "none"  # never created: no preferences, no source parts
        return [
            "-o", f"Dir::Etc::sourcelist={self.sources}",
            "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::Etc::preferences={none}",
            "-o", f"Dir::Etc::preferencesparts={none}",
            "-o", f"Dir::State::Lists={lists}",
            "-o", f"Dir::Cache={cache}",
            "-o", "Dir::State::status=/dev/null",
            "-o", "Acquire::Languages=none",
            "-o", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
        ]

    def source_line(self) -> str:
        opts = [f"arch={ARCH}"]
        if ARCHIVE_KEYRING.exists():
            opts.append(f"signed-by={ARCHIVE_KEYRING}")
        return f"deb [{' '.join(opts)}] {self.mirror} {self.suite} main\n"

    def update(self) -> None:
        """Download the suite's package lists into the private lists directory."""
        for sub in ("lists/partial", "cache/archives/partial"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self.sources.write_text(self.source_line())
        # --error-on=any: a failed download is an error, not a warning over stale lists.
        self._run(["apt-get", *self.options(), "--error-on=any", "update"],
                  what=f"update {self.suite} lists")

    def pkgnames(self, prefix: str) -> list[str]:
        out = self._run(["apt-cache", *self.options(), "pkgnames", prefix],
                        what=f"list packages named {prefix}*")
        return out.split()

    def download(self, packages: Sequence[str], dest: Path) -> list[Path]:
        """Download `.deb` files into `dest` (apt-get download writes to its cwd).

        Returns one path per package, in the order given.
        """
        dest.mkdir(parents=True, exist_ok=True)
        self._run(["apt-get", *self.options(), "download", *packages], cwd=dest,
                  what="download " + " ".join(packages))
        found = []
        for pkg in packages:
            debs = sorted(dest.glob(f"{glob.escape(pkg)}_*.deb"))
            if not debs:
                raise KernelError(f"apt-get download of {pkg} from {self.mirror} produced no "
                                  f".deb in {dest}; hint: check the mirror serves {self.suite}")
            found.append(debs[-1])
        return found

    def _run(self, argv: list[str], *, what: str, cwd: Path | None = None) -> str:
        log.info("apt: %s", what)
        try:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        except FileNotFoundError as err:
            raise HostSetupError(f"cannot run {argv[0]} ({err.strerror})",
                                 "fetching kernels needs a Debian host with apt") from err
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            errors = [line for line in lines if line.startswith("E:")]
            tail = "\n".join(errors or lines[-8:])
            raise KernelError(f"apt could not {what} from {self.mirror} (exit code "
                              f"{proc.returncode}):\n{tail}\nhint: check the network and the "
                              "mirror, or pass --mirror URL")
        return proc.stdout


# -- .deb files --------------------------------------------------------------------------


def extract_deb(deb: Path, dest: Path) -> None:
    """Unpack a package's files (not its scripts) into `dest`."""
    _dpkg_deb(["-x", str(deb), str(dest)])


def deb_field(deb: Path, field: str) -> str:
    """One control field of a package file, e.g. its `Version`."""
    return _dpkg_deb(["-f", str(deb), field]).strip()


def _dpkg_deb(args: list[str]) -> str:
    try:
        proc = subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise HostSetupError("cannot run dpkg-deb", "apt-get install dpkg") from err
    if proc.returncode != 0:
        raise KernelError(f"dpkg-deb {' '.join(args)} failed: {proc.stderr.strip()}; "
                          "hint: the download may be truncated, run the fetch again")
    return proc.stdout
