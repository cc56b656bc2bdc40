"""`ktstr snapshot {list,clean}`: the saved guests that VMs restore instead of booting.

Snapshots are made by the runs themselves (the first cold boot of each VM
configuration saves one; see ktstr.vm.snapshot); this command shows and
removes them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError
from ktstr.vm.snapshot import SavedGuest, clean_snapshots, list_snapshots, snapshots_root


def register(sub: Any) -> None:
    parser = sub.add_parser("snapshot", help="list and clean saved guests (fast VM starts)",
                            description=__doc__.splitlines()[0])
    cmds = parser.add_subparsers(dest="snapshot_command", metavar="COMMAND", required=True)
    cmds.add_parser("list", help="list saved guests").set_defaults(func=cmd_list)
    clean = cmds.add_parser("clean", help="remove saved guests (they are saved again "
                            "by the next cold boot)")
    clean.add_argument("keys", nargs="*", metavar="KEY", help="snapshot keys or prefixes")
    clean.add_argument("--all", action="store_true", help="remove every snapshot")
    clean.set_defaults(func=cmd_clean)


def describe(snap: SavedGuest) -> str:
    m = snap.meta()
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(m.get("created", 0))))
    kernel = Path(str(m.get("image", "?/?"))).parent.name  # the kernel's cache key
    return (f"{snap.key}  {m.get('topology', '?'):<10} {m.get('memory_mb', '?'):>6} MiB  "
            f"{m.get('accel', '?'):<4} {int(m.get('size', 0)) / 2**20:7.1f} MiB  "
            f"{created}  {kernel}  qemu {m.get('qemu', '?')}")


def cmd_list(args: argparse.Namespace) -> int:
    snaps = list_snapshots()
    if not snaps:
        print(f"no snapshots in {snapshots_root()}; the next VM run saves one")
        return 0
    print(f"{'KEY':<20}  {'TOPOLOGY':<10} {'MEMORY':>10}  {'ACC':<4} {'SIZE':>11}  "
          f"{'CREATED':<16}  KERNEL")
    for snap in snaps:
        print(describe(snap))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    if not args.keys and not args.all:
        raise ConfigError("name the snapshots to remove; hint: `ktstr snapshot clean --all`, "
                          "or keys from `ktstr snapshot list`")
    if args.keys and args.all:
        raise ConfigError("give snapshot keys or --all, not both")
    keys = None if args.all else list(args.keys)
    removed = clean_snapshots(keys)
    if keys and not removed:
        raise ConfigError(f"no snapshot matches {', '.join(keys)}; "
                          "hint: `ktstr snapshot list` shows the keys")
    for key in removed:
        print(f"removed snapshot {key}")
    return 0
