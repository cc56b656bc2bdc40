"""`ktstr kernel {fetch,list,clean}`: manage the cache of kernels the VMs boot.

Each handler returns an exit code; errors are raised as `KtstrError` and turned into a
one-line message by `ktstr.cli.main`.
"""

from __future__ import annotations

import argparse
import time

from ktstr.errors import ConfigError
from ktstr.vm.kernel import (
    Kernel,
    clean_kernels,
    kernel_cache_root,
    list_kernels,
    read_metadata,
)
from ktstr.vm.kernel_fetch import fetch_kernel


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `kernel` and its subcommands to the top-level parser."""
    parser = subparsers.add_parser("kernel", help="fetch, list and clean cached kernels",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kernel_command", metavar="COMMAND", required=True)

    fetch = sub.add_parser("fetch", help="fetch a Debian unstable kernel into the cache")
    fetch.add_argument("version", nargs="?", metavar="VERSION",
                       help="kernel version or prefix, e.g. 7.2 (default: the newest with "
                            "sched_ext)")
    fetch.add_argument("--mirror", metavar="URL",
                       help="Debian archive mirror (default: the one the host's apt uses)")
    fetch.set_defaults(func=cmd_fetch)

    lst = sub.add_parser("list", help="list cached kernels")
    lst.set_defaults(func=cmd_list)

    clean = sub.add_parser("clean", help="remove cached kernels")
    clean.add_argument("keys", nargs="*", metavar="KEY", help="cache keys to remove")
    clean.add_argument("--all", action="store_true",
                       help="remove every cached kernel and the private apt lists")
    clean.set_defaults(func=cmd_clean)


def describe(kernel: Kernel) -> str:
    """One line per kernel: key, sched_ext, BTF vmlinux, modules, where."""
    sched_ext = "sched_ext" if kernel.has_sched_ext else "no-sched_ext"
    btf = "vmlinux" if kernel.vmlinux else "no-vmlinux"
    modules = f"{len(kernel.vm_modules())} modules"
    return f"{kernel.key:<28} {sched_ext:<12} {btf:<10} {modules:<10} {kernel.image.parent}"


def cmd_fetch(args: argparse.Namespace) -> int:
    started = time.monotonic()
    cached_before = {k.key for k in list_kernels()}
    kernel = fetch_kernel(args.version, mirror=args.mirror)
    meta = read_metadata(kernel)
    if kernel.key in cached_before:
        print(f"kernel {kernel.key} already cached (fetched {meta.get('fetched_at', '?')} "
              f"from {meta.get('mirror', '?')})")
    else:
        print(f"fetched kernel {kernel.key} from {meta.get('mirror', '?')} in "
              f"{time.monotonic() - started:.1f} s")
    print(describe(kernel))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    kernels = list_kernels()
    if not kernels:
        print(f"no cached kernels in {kernel_cache_root()}; hint: run `ktstr kernel fetch`")
        return 0
    for kernel in kernels:
        print(describe(kernel))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    if args.all == bool(args.keys):
        raise ConfigError("kernel clean needs cache keys or --all, not both or neither; "
                          "hint: `ktstr kernel list` shows the keys")
    removed = clean_kernels(None if args.all else args.keys)
    for key in removed:
        print(f"removed {key}")
    if not removed:
        print("nothing to remove")
    return 0
