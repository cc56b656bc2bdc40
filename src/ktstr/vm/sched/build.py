"""`ktstr sched build`: compile the kernel's example sched_ext schedulers for a cached kernel.

Steps: check the host toolchain (clang/lld/llvm 19, libelf and zlib headers, make, and
zig from the PyPI `ziglang` wheel), get the matching `linux-source` slice
(`source.fetch_source`), run `make -C tools/sched_ext LLVM=-19 CLANG=<bpf-clang>
VMLINUX_BTF=<kernel's vmlinux> scx_simple ...` (about 45 s on 2 cores; it also builds the
matching `bpftool`), then copy the binaries, the build log and a manifest into
`<kernel entry>/sched/`.

Why two compilers: the userspace halves and libbpf/bpftool build fine with Debian 12's
clang-19, but clang-19 miscompiles BPF arena code: in scx_qmap's `qmap_dequeue` it drops
an `addr_space_cast` on one path, so the verifier rejects the store through the arena
pointer (`R7 invalid mem access 'scalar'`) and scx_qmap never loads. The clang that zig
bundles (LLVM 22 in ziglang 0.17) emits the cast; `zig clang` is clang's own driver, so
the Makefile's BPF flags pass unchanged. Only `$(CLANG)`, the BPF compiler (also used
for bpftool's own skeletons), is swapped, for a two-line wrapper script: one executable
path, which the Makefile's `$(CLANG) -v -E` include probe and bpftool's sub-make take
as they would a clang binary. The new directory is assembled in
a temporary directory inside the entry and renamed into place, under a lock of its own
(`<entry>/.sched.lock`), so readers never see half a build and concurrent builds of one
kernel run once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError, HostSetupError, KernelError
from ktstr.vm.kernel import TEMP_PREFIX, Kernel, exclusive_lock
from ktstr.vm.sched.cache import (
    BPFTOOL,
    EXAMPLE_SCHEDULERS,
    MANIFEST,
    read_manifest,
    sched_dir,
)
from ktstr.vm.sched.source import SourceTree, fetch_source

log = logging.getLogger(__name__)

LLVM_VERSION = "19"
#: Executable -> the Debian package that provides it.
TOOLS = {f"clang-{LLVM_VERSION}": f"clang-{LLVM_VERSION}",
         f"llvm-strip-{LLVM_VERSION}": f"llvm-{LLVM_VERSION}",
         f"ld.lld-{LLVM_VERSION}": f"lld-{LLVM_VERSION}",
         "make": "make"}
#: Header under /usr/include -> the Debian package that provides it.
HEADERS = {"gelf.h": "libelf-dev", "zlib.h": "zlib1g-dev"}
#: The PyPI package that bundles the BPF compiler (`zig clang`: clang/LLVM 22 in 0.17).
ZIG_PACKAGE = "ziglang"
#: Wrapper script, written next to the source tree, that make runs as `$(CLANG)`.
BPF_CLANG_SCRIPT = "bpf-clang"
#: `tools` key of the manifest naming the BPF compiler; a manifest without it is from a
#: build whose BPF objects clang-19 compiled (scx_qmap rejected), so it is rebuilt.
BPF_CLANG_KEY = "bpf_clang"
LOCK_FILE = ".sched.lock"
SCHED_TEMP_PREFIX = TEMP_PREFIX + "sched-"

FetchSource = Callable[..., SourceTree]  # (kernel, work, *, mirror) -> SourceTree
RunMake = Callable[[Path, Path, Path], Path]  # (source root, vmlinux, log) -> build dir


@dataclass(frozen=True)
class BuildResult:
    """What `build_schedulers` left in the cache: `built` is False when it was up to date."""

    directory: Path
    manifest: dict[str, Any]
    built: bool


def find_zig() -> Path | None:
    """The `zig` executable shipped in the `ziglang` wheel of this Python, if installed."""
    spec = importlib.util.find_spec(ZIG_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    zig = Path(spec.origin).parent / "zig"
    return zig if zig.is_file() and os.access(zig, os.X_OK) else None


def check_toolchain(which: Callable[[str], str | None] | None = None,
                    include_dir: Path = Path("/usr/include"),
                    zig: Callable[[], Path | None] | None = None) -> None:
    """Raise `HostSetupError` naming the packages to install when a build tool is missing."""
    which = which or shutil.which
    missing = {tool: pkg for tool, pkg in TOOLS.items() if which(tool) is None}
    missing |= {h: pkg for h, pkg in HEADERS.items() if not (include_dir / h).is_file()}
    if missing:
        packages = " ".join(dict.fromkeys(missing.values()))
        raise HostSetupError(f"cannot build sched_ext schedulers: {', '.join(missing)} not "
                             "found on this host", f"apt-get install -y {packages}")
    if (zig or find_zig)() is None:
        raise _no_zig()


def _no_zig() -> HostSetupError:
    return HostSetupError("cannot build sched_ext schedulers: zig (the BPF compiler, from the "
                          f"PyPI package {ZIG_PACKAGE}) is not installed in {sys.prefix}; "
                          f"clang-{LLVM_VERSION} builds a scx_qmap the verifier rejects",
                          f"{sys.executable} -m pip install {ZIG_PACKAGE}")


def bpf_clang_script(zig: Path) -> str:
    """A shell script that runs zig's bundled clang driver with the arguments it is given."""
    return f'#!/bin/sh\nexec {shlex.quote(str(zig))} clang "$@"\n'


def write_bpf_clang(zig: Path, directory: Path) -> Path:
    """Write `bpf_clang_script(zig)` as an executable `BPF_CLANG_SCRIPT` in `directory`."""
    path = directory / BPF_CLANG_SCRIPT
    path.write_text(bpf_clang_script(zig))
    path.chmod(0o755)
    return path


def make_argv(src: Path, vmlinux: Path, bpf_clang: Path, jobs: int) -> list[str]:
    """The make command line: clang-19 for userspace and bpftool, `bpf_clang` for BPF."""
    return ["make", "-C", str(src / "tools/sched_ext"), f"-j{jobs}",
            f"LLVM=-{LLVM_VERSION}", f"CLANG={bpf_clang}", f"VMLINUX_BTF={vmlinux}",
            *EXAMPLE_SCHEDULERS]


def run_make(src: Path, vmlinux: Path, log_path: Path) -> Path:
    """Build the example schedulers in `src`; returns `tools/sched_ext/build` (bin/, sbin/)."""
    zig = find_zig()
    if zig is None:
        raise _no_zig()
    bpf_clang = write_bpf_clang(zig, src.parent)
    argv = make_argv(src, vmlinux, bpf_clang, os.cpu_count() or 1)
    log.info("building %s (BPF with %s clang)", " ".join(EXAMPLE_SCHEDULERS), zig)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise KernelError(f"building the sched_ext schedulers failed (make exit code "
                          f"{proc.returncode}):\n{tail}\nhint: see {log_path}; a missing tool "
                          "or header is the usual cause")
    return src / "tools/sched_ext/build"


def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def tool_versions(bpftool: Path) -> dict[str, str]:
    zig = find_zig()
    return {"clang": _first_line([f"clang-{LLVM_VERSION}", "--version"]),
            BPF_CLANG_KEY: _first_line([str(zig), "clang", "--version"]) if zig else "unknown",
            "make": _first_line(["make", "--version"]),
            "bpftool": _first_line([str(bpftool), "version"])}


def _sched_lock(entry: Path) -> contextlib.AbstractContextManager[bool]:
    return exclusive_lock(entry / LOCK_FILE, f"the scheduler build in {entry}")


def is_complete(kernel: Kernel) -> bool:
    """True when the kernel's sched directory has a manifest and every binary it promises.

    A manifest that names no BPF compiler is from a build that compiled BPF with clang-19,
    whose scx_qmap does not load: such a directory counts as incomplete, so a plain
    `ktstr sched build` (and `make setup`) replaces it.
    """
    manifest, where = read_manifest(kernel), sched_dir(kernel)
    if manifest is None or where is None:
        return False
    if BPF_CLANG_KEY not in (manifest.get("tools") or {}):
        return False
    names = [*EXAMPLE_SCHEDULERS, BPFTOOL]
    return all(os.access(where / n, os.X_OK) and (where / n).is_file() for n in names)


def _check_kernel(kernel: Kernel) -> tuple[Path, Path]:
    """The kernel's sched directory and BTF vmlinux, or an error saying why it cannot have one."""
    where = sched_dir(kernel)
    if where is None:
        raise ConfigError(f"kernel {kernel.key} is not a cached kernel, so there is no Debian "
                          "source package to build its schedulers from; hint: `ktstr kernel "
                          "fetch`, then `ktstr sched build --kernel VERSION`")
    if kernel.vmlinux is None:
        raise KernelError(f"cached kernel {kernel.key} has no BTF vmlinux to build against; "
                          f"hint: `ktstr kernel clean {kernel.key}` and fetch it again")
    if not kernel.has_sched_ext:
        raise KernelError(f"kernel {kernel.key} is built without CONFIG_SCHED_CLASS_EXT, so "
                          "sched_ext schedulers cannot run on it; hint: `ktstr kernel fetch` "
                          "(the default picks a kernel with sched_ext)")
    return where, kernel.vmlinux


def build_schedulers(kernel: Kernel, *, force: bool = False, mirror: str | None = None,
                     fetch: FetchSource = fetch_source, make: RunMake = run_make) -> BuildResult:
    """Build and cache the example schedulers for `kernel` unless already built (`force`)."""
    where, vmlinux = _check_kernel(kernel)
    entry = where.parent
    with _sched_lock(entry):
        if not force and is_complete(kernel):
            return BuildResult(where, read_manifest(kernel) or {}, built=False)
        check_toolchain()
        for leftover in entry.glob(SCHED_TEMP_PREFIX + "*"):  # a build that died
            shutil.rmtree(leftover, ignore_errors=True)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=SCHED_TEMP_PREFIX, dir=entry))
        try:
            src = fetch(kernel, work, mirror=mirror)
            out = work / "sched"
            build = make(src.root, vmlinux, out / "build.log")
            manifest = _install(build, out, src, kernel, started)
            if where.exists():
                os.rename(where, work / "old")
            os.rename(out, where)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log.info("built schedulers for %s in %.1f s", kernel.key, manifest["build_seconds"])
    return BuildResult(where, manifest, built=True)


def _install(build: Path, out: Path, src: SourceTree, kernel: Kernel,
             started: float) -> dict[str, Any]:
    """Copy the binaries from make's build dir into `out` and write the manifest there."""
    wanted = {n: build / "bin" / n for n in EXAMPLE_SCHEDULERS}
    wanted[BPFTOOL] = build / "sbin" / BPFTOOL
    absent = [str(p) for p in wanted.values() if not p.is_file()]
    if absent:
        raise KernelError(f"make succeeded but left no {', '.join(absent)}; hint: see "
                          f"{out / 'build.log'} (the sched_ext Makefile may have changed)")
    out.mkdir(parents=True, exist_ok=True)
    for name, path in wanted.items():
        shutil.copy2(path, out / name)
    manifest: dict[str, Any] = {
        "kernel": kernel.key,
        "source_package": src.package,
        "source_version": src.version,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.monotonic() - started, 1),
        "tools": tool_versions(out / BPFTOOL),
        "schedulers": list(EXAMPLE_SCHEDULERS),
        "helpers": [BPFTOOL],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
