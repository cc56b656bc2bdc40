"""`ktstr shell --topo 1n2l2c1t [--exec CMD]`: a VM with that topology, for poking around."""

from __future__ import annotations

import argparse
from typing import Any

from ktstr.errors import ConfigError
from ktstr.runner.shell import main_exit, run_shell
from ktstr.topology import Topology
from ktstr.vm.accel import choose_tcg_threads
from ktstr.vm.machine import SCRATCH_DISK_MB
from ktstr.vm.qemu import TCG_THREADS


def register(sub: Any) -> None:
    p = sub.add_parser("shell", help="boot a VM with a topology; run a command or a shell",
                       description=__doc__)
    p.add_argument("--topo", required=True, metavar="<n>n<l>l<c>c<t>t",
                   help="NUMA nodes, LLCs in total, cores per LLC, threads per core")
    p.add_argument("--kernel", metavar="SPEC", help="as for `ktstr test`")
    p.add_argument("--memory-mb", type=int, default=2048)
    p.add_argument("--disk-mb", type=int, default=SCRATCH_DISK_MB, metavar="MB",
                   help="size of the raw scratch disk (serial ktstr-scratch) the block-I/O "
                   "work types use; 0: none (default: %(default)s)")
    p.add_argument("--exec", dest="command", metavar="CMD",
                   help="run CMD with /bin/sh -c and exit with its code "
                   "(default: an interactive shell on this terminal)")
    p.add_argument("--cold", action="store_true", help="boot instead of restoring a snapshot "
                   "(an interactive shell always boots)")
    p.add_argument("--tcg-threads", choices=TCG_THREADS, default=None,
                   help="under emulation: a host thread per vCPU (multi, the default, or "
                   "$KTSTR_TCG_THREADS), or one for all (single: slower, but qemu 7.2 "
                   "survives loading and unloading sched_ext schedulers only this way)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    topology = Topology.parse(args.topo)  # a bad string fails here, before any boot
    if args.disk_mb < 0:
        raise ConfigError(f"--disk-mb {args.disk_mb} is negative; hint: give a size in MiB, "
                          "or 0 for no scratch disk")
    result = run_shell(topology, kernel_spec=args.kernel, command=args.command,
                       memory_mb=args.memory_mb, cold=args.cold,
                       tcg_threads=args.tcg_threads or choose_tcg_threads(False),
                       disk_mb=args.disk_mb)
    return main_exit(result)
