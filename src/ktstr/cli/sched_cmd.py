"""`ktstr sched {build,list}`: the sched_ext schedulers tests can run under.

`build` compiles the kernel's example schedulers (scx_simple, scx_qmap, scx_central,
scx_flatcg, plus bpftool) for a cached kernel; `list` shows those and any `scx_*` on PATH.
"""

from __future__ import annotations

import argparse
import time

from ktstr.errors import KernelError
from ktstr.vm.kernel import Kernel, resolve_kernel
from ktstr.vm.sched import build_schedulers, cached_binaries, path_schedulers, read_manifest


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `sched` and its subcommands to the top-level parser."""
    parser = subparsers.add_parser("sched", help="build and list sched_ext schedulers",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="sched_command", metavar="COMMAND", required=True)

    build = sub.add_parser("build", help="build the kernel's example sched_ext schedulers")
    build.add_argument("--kernel", metavar="SPEC",
                       help="cached kernel version or key (default: the newest cached)")
    build.add_argument("--force", action="store_true", help="rebuild even if already built")
    build.add_argument("--mirror", metavar="URL",
                       help="Debian archive mirror (default: the one the kernel came from)")
    build.set_defaults(func=cmd_build)

    lst = sub.add_parser("list", help="list built schedulers and scx_* binaries on PATH")
    lst.add_argument("--kernel", metavar="SPEC",
                     help="cached kernel version or key (default: the newest cached)")
    lst.set_defaults(func=cmd_list)


def cmd_build(args: argparse.Namespace) -> int:
    kernel = resolve_kernel(args.kernel)
    started = time.monotonic()
    result = build_schedulers(kernel, force=args.force, mirror=args.mirror)
    m = result.manifest
    if result.built:
        print(f"built schedulers for kernel {kernel.key} from {m.get('source_package')} "
              f"{m.get('source_version')} in {time.monotonic() - started:.1f} s")
    else:
        print(f"schedulers for kernel {kernel.key} already built ({m.get('built_at', '?')}); "
              "--force rebuilds")
    for name, path in cached_binaries(kernel).items():
        print(f"  {name:<12} {path}")
    return 0


def _kernel_section(kernel: Kernel) -> None:
    binaries = cached_binaries(kernel)
    m = read_manifest(kernel)
    if not binaries or m is None:
        print(f"kernel {kernel.key}: no schedulers built; hint: run `ktstr sched build "
              f"--kernel {kernel.key}`")
        return
    print(f"kernel {kernel.key}: built {m.get('built_at', '?')} from "
          f"{m.get('source_package', '?')} {m.get('source_version', '?')}")
    for name, path in binaries.items():
        print(f"  {name:<12} {path}")


def cmd_list(args: argparse.Namespace) -> int:
    try:
        kernel: Kernel | None = resolve_kernel(args.kernel)
    except KernelError:
        if args.kernel is not None:
            raise
        kernel = None
    if kernel is None:
        print("no cached kernel; hint: run `ktstr kernel fetch`, then `ktstr sched build`")
    else:
        _kernel_section(kernel)
    on_path = path_schedulers()
    if on_path:
        print("on PATH:")
        for name, path in on_path.items():
            print(f"  {name:<12} {path}")
    else:
        print("on PATH: no scx_* binaries")
    return 0
