#!/usr/bin/env python3
"""How often a guest dies flipping static keys, per TCG threading (ktstr.vm.accel).

    .venv/bin/python bench/tcg_text_patch_race.py [--what schedstats|cpuset|scx]
        [--threads multi|single] [--runs 4] [--flips 200]

Each run boots a 4-vCPU guest (the `ktstr shell` path), spins on every vCPU and flips
kernel static keys `--flips` times: kernel.sched_schedstats off and on, a cpuset cgroup
made and removed at the root, or scx_simple loaded and unloaded. Every flip patches
kernel text through int3 breakpoints; qemu 7.2's multi-threaded TCG lets another vCPU
keep a stale translation of one, and the guest dies with "Oops: int3". Prints each
run's outcome and the tally. `KTSTR_QEMU=/path/to/qemu-system-x86_64` tries another
qemu. Measured on qemu 7.2 (2-core host): schedstats x200 multi 3 of 5 died, scx_simple
x8 multi 3 of 4 died; with single none. The guest itself holds the schedstats and cpuset
keys on (ktstr.vm.machine.STATIC_KEYS_ON, ktstr.guest.init.KEYS_CGROUP), so those flips
are this script's own doing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ktstr.errors import KtstrError  # noqa: E402
from ktstr.runner.shell import run_shell  # noqa: E402
from ktstr.topology import Topology  # noqa: E402
from ktstr.vm.accel import TEXT_PATCH_OOPS  # noqa: E402
from ktstr.vm.kernel import resolve_kernel  # noqa: E402
from ktstr.vm.qemu import TCG_THREADS  # noqa: E402
from ktstr.vm.sched.cache import discover  # noqa: E402

SPIN = ("for c in 1 2 3 4; do (while :; do :; done) >/dev/null 2>&1 & "
        "pids=\"$pids $!\"; done; ")
STATE = "/sys/kernel/sched_ext/state"


def flips(what: str, n: int) -> str:
    if what == "schedstats":
        knob = "/proc/sys/kernel/sched_schedstats"
        return f"for i in $(seq {n}); do echo 0 > {knob}; echo 1 > {knob}; done; "
    if what == "cpuset":
        return (f"for i in $(seq {n}); do mkdir /sys/fs/cgroup/flip$i; "
                "rmdir /sys/fs/cgroup/flip$i; done; ")
    simple = discover("scx_simple", resolve_kernel(None))
    if simple is None:
        raise SystemExit("scx_simple is not built (ktstr sched build)")
    return (f"for i in $(seq {n}); do {simple} >/dev/null & pid=$!; "
            f"for j in $(seq 100); do [ \"$(cat {STATE})\" = enabled ] && break; "
            "sleep 0.1; done; sleep 0.5; kill -INT $pid; wait $pid; done; ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--what", choices=("schedstats", "cpuset", "scx"), default="schedstats")
    ap.add_argument("--threads", choices=TCG_THREADS, default="multi")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--flips", type=int, default=200)
    args = ap.parse_args()
    script = SPIN + flips(args.what, args.flips) + "kill $pids; echo survived"
    died = 0
    for run in range(args.runs):
        t = time.monotonic()
        try:
            out = run_shell(Topology.parse("1n1l4c1t"), kernel_spec=None, command=script,
                            tcg_threads=args.threads, timeout_s=900).stdout
            verdict = "survived" if "survived" in out else f"no answer: {out[-200:]!r}"
        except KtstrError as e:
            died += 1
            verdict = "died: " + (TEXT_PATCH_OOPS if TEXT_PATCH_OOPS in str(e)
                                  else str(e).splitlines()[0])
        print(f"run {run}: {verdict} ({time.monotonic() - t:.1f} s)", flush=True)
    print(f"{args.what} x{args.flips}, thread={args.threads}: {died} of {args.runs} died")


if __name__ == "__main__":
    main()
