"""The kernel's example sched_ext schedulers, built for and cached beside a cached kernel.

`cache` finds built schedulers (the kernel's `sched/` directory, then PATH), `source`
gets the matching `linux-source-<major.minor>` package through the kernel fetch's private
apt state, and `build` compiles `tools/sched_ext` against the kernel's BTF `vmlinux`.
"""

from __future__ import annotations

from ktstr.vm.sched.build import BuildResult, build_schedulers, check_toolchain
from ktstr.vm.sched.cache import (
    EXAMPLE_SCHEDULERS,
    cached_binaries,
    discover,
    find_scheduler_binary,
    path_schedulers,
    read_manifest,
    sched_dir,
)

__all__ = [
    "EXAMPLE_SCHEDULERS",
    "BuildResult",
    "build_schedulers",
    "cached_binaries",
    "check_toolchain",
    "discover",
    "find_scheduler_binary",
    "path_schedulers",
    "read_manifest",
    "sched_dir",
]
