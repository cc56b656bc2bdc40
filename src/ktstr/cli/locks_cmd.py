"""`ktstr locks`: which host CPUs running VMs hold, and who holds them.

Each VM reserves host CPUs for its vCPU threads for its whole life (one flock
per host CPU, ktstr.vm.cpulock), so parallel runs (`ktstr test -n N`, or two
sessions on one host) do not share them. A lock dies with its holder: the
list shows only live ones.
"""

from __future__ import annotations

import argparse
from typing import Any

from ktstr.vm.cpulock import holders, lock_dir


def register(sub: Any) -> None:
    p = sub.add_parser("locks", help="list the host CPUs held by running VMs",
                       description=__doc__.splitlines()[0])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    held = holders() if lock_dir().is_dir() else []
    if not held:
        print(f"no host CPU is held (locks in {lock_dir()})")
        return 0
    print(f"{'CPU':>4}  {'PID':>8}  {'SINCE':<19}  TEST  COMMAND")
    for h in held:
        print(h.line())
    return 0
