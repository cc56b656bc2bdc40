"""`ktstr test [PYTEST ARGS...] [--kernel SPEC] [--cold] [--no-monitor] [--gauntlet]
[--max-cpus N] [--budget DURATION]`: pytest with the ktstr plugin.

The plugin is loaded through its `pytest11` entry point, so `ktstr test x/`
and `pytest x/` run the same tests; this wrapper checks the kernel spec before
pytest starts, so a bad `--kernel` fails before collection and any boot.
`--cold` and `--no-monitor` become the plugin's `--ktstr-cold` and
`--ktstr-no-monitor`, which reach each run as parameters (ktstr.runner.vmrun.run_in_vm).
`--gauntlet`, `--max-cpus N` and `--budget DURATION` are the plugin's own options,
passed on as they are, and so is pytest-xdist's `-n N` (N VMs at once, each
reserving its host CPUs: ktstr.vm.cpulock; `ktstr locks` lists them).

SIGINT and SIGTERM end the run as interrupted (ktstr.runner.signals): once
pytest runs, with pytest's status 2; during the kernel check before it, with
the shell's 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from ktstr.runner.signals import stop_on_signals
from ktstr.settings import ENV_COLD, ENV_MONITOR
from ktstr.vm.kernel import resolve_kernel

_REWRITE_NOTICE = "Module already imported so cannot be rewritten"


def register(sub: Any) -> None:
    p = sub.add_parser("test", help="run @ktstr_test tests (extra arguments go to pytest)",
                       description=__doc__)
    p.add_argument("--kernel", metavar="SPEC", help="kernel version, cache key, bzImage "
                   "or kernel tree (default: the newest cached kernel)")
    p.add_argument("--cold", action="store_true", help="boot every VM instead of restoring "
                   f"a snapshot of a booted guest (see `ktstr snapshot`; env {ENV_COLD}=1)")
    p.add_argument("--no-monitor", action="store_true", help="run VMs without the host-side "
                   f"monitor; its checks are not judged (env {ENV_MONITOR}=off)")
    p.add_argument("--gauntlet", action="store_true", help="also run every test on each "
                   "gauntlet preset it admits (ids NAME[gauntlet/PRESET]; docs/gauntlet.md)")
    p.add_argument("--max-cpus", type=int, metavar="N", help="leave out gauntlet presets "
                   "with more than N CPUs (default: the host's CPUs under KVM, a measured "
                   "ceiling under emulation)")
    p.add_argument("--budget", metavar="DURATION", help="with --gauntlet: only the variants "
                   "that cover the most topology features per estimated second within "
                   "DURATION (90s, 10m, 1h or seconds; docs/gauntlet.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with stop_on_signals():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    kernel = resolve_kernel(args.kernel)  # raises KernelError naming the spec
    pytest_args = [*args.pytest_args, "--kernel",
                   kernel.key if args.kernel is None else args.kernel,
                   # This process imported ktstr before pytest could rewrite its asserts.
                   "-W", f"ignore:{_REWRITE_NOTICE}:pytest.PytestAssertRewriteWarning",
                   *(["--ktstr-cold"] if args.cold else []),
                   *(["--ktstr-no-monitor"] if args.no_monitor else []),
                   *(["--gauntlet"] if args.gauntlet else []),
                   *([f"--max-cpus={args.max_cpus}"] if args.max_cpus is not None else []),
                   *([f"--budget={args.budget}"] if args.budget is not None else [])]
    return int(pytest.main(pytest_args))
