"""Where built schedulers live and how a scheduler binary is found by name.

A cached kernel's entry holds `sched/` once `ktstr sched build` ran: one executable per
example scheduler, `bpftool`, `build.log` and `sched.json` (the manifest: source package
and version, when it was built, tool versions). `discover(name, kernel)` looks there
first, then on PATH, so a test naming `scx_simple` gets the one built against the very
kernel it boots, and a user's own `scx_rusty` on PATH still works.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ktstr.errors import ConfigError
from ktstr.vm.kernel import METADATA, Kernel

if TYPE_CHECKING:
    from ktstr.scheduler import SchedulerSpec

EXAMPLE_SCHEDULERS = ("scx_simple", "scx_qmap", "scx_central", "scx_flatcg")
BPFTOOL = "bpftool"
SCHED_DIR = "sched"
MANIFEST = "sched.json"
PATH_PREFIX = "scx_"  # what `sched list` shows from PATH
BUILD_HINT = ("hint: run `ktstr sched build` (builds " + ", ".join(EXAMPLE_SCHEDULERS)
              + " for the cached kernel), put the binary on PATH, or use "
              "SchedulerSpec.path()")


def sched_dir(kernel: Kernel) -> Path | None:
    """`<kernel cache entry>/sched`, or None for a kernel given by path (no cache entry)."""
    entry = kernel.image.parent
    if kernel.image.name != "vmlinuz" or not (entry / METADATA).is_file():
        return None
    return entry / SCHED_DIR


def read_manifest(kernel: Kernel) -> dict[str, Any] | None:
    """The kernel's `sched/sched.json`, or None when nothing was built (or it is unreadable)."""
    where = sched_dir(kernel)
    if where is None:
        return None
    try:
        data: dict[str, Any] = json.loads((where / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def cached_binaries(kernel: Kernel) -> dict[str, Path]:
    """Name -> path of every executable in the kernel's sched directory that the manifest lists."""
    manifest = read_manifest(kernel)
    where = sched_dir(kernel)
    if manifest is None or where is None:
        return {}
    names = [*manifest.get("schedulers", []), *manifest.get("helpers", [])]
    return {n: where / n for n in names if _is_executable(where / n)}


def path_schedulers(path_env: str | None = None) -> dict[str, Path]:
    """Every `scx_*` executable on PATH (`path_env`, default `$PATH`); the first one wins."""
    found: dict[str, Path] = {}
    for d in (path_env if path_env is not None else os.environ.get("PATH", "")).split(os.pathsep):
        try:
            entries = sorted(Path(d or ".").iterdir())
        except OSError:
            continue
        for p in entries:
            if p.name.startswith(PATH_PREFIX) and p.name not in found and _is_executable(p):
                found[p.name] = p
    return found


def discover(name: str, kernel: Kernel | None) -> Path | None:
    """The binary `name`: the kernel's built schedulers first, then PATH; None if neither."""
    if kernel is not None:
        where = sched_dir(kernel)
        if where is not None and _is_executable(where / name):
            return where / name
    hit = shutil.which(name)
    return Path(hit) if hit else None


def find_scheduler_binary(spec: SchedulerSpec, kernel: Kernel | None) -> Path:
    """The host binary a `SchedulerSpec` names, for the runner to put into the guest.

    `discover` specs go through `discover()`; `path` specs must exist and be executable.
    EEVDF and kernel built-ins have no binary: asking for one is a `ConfigError`.
    """
    if spec.kind == "path":
        path = Path(spec.value)
        if not _is_executable(path):
            raise ConfigError(f"scheduler binary {spec.value} does not exist or is not "
                              "executable; hint: build it, or fix the SchedulerSpec.path()")
        return path
    if spec.kind == "discover":
        hit = discover(spec.value, kernel)
        if hit is None:
            where = sched_dir(kernel) if kernel is not None else None
            looked = f"in {where} nor on PATH" if where is not None else "on PATH"
            raise ConfigError(f"scheduler {spec.value!r} not found: not {looked}; "
                              + BUILD_HINT)
        return hit
    raise ConfigError(f"scheduler spec of kind {spec.kind!r} has no binary to find; "
                      "hint: only discover and path specs name a binary")
