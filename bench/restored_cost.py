#!/usr/bin/env python3
"""The fixed cost of a restored run: `ktstr test` on a one-worker test, command to exit.

    .venv/bin/python bench/restored_cost.py [--runs 5] [--ktstr PATH ...] [--kernel SPEC]

Runs `ktstr test bench/restored_test.py` (one cgroup, one worker, duration_s=0.5;
restored from the saved guest, which a first unmeasured run saves when needed) with
each `--ktstr` executable in turn, round robin, so that a slow minute of a shared
host hurts every contender alike. Give the `ktstr` of another checkout (its own
virtual environment) to compare two versions; default: this interpreter's.

Per contender, median and range of:
  - wall: the command, start to exit (what a user waits for),
  - wall - cpu wait: the same without the time the run waited for host CPUs that
    other VMs held (ktstr.vm.cpulock; other people's load, not this run's cost),
  - restore: qemu start -> restored guest running (the sidecar's boot_s),
  - body: the guest's body, set-up and checks included (the sidecar's body_s).
The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEST = HERE / "restored_test.py"


def run_once(ktstr: str, kernel: str | None) -> dict[str, float]:
    runs = Path(tempfile.mkdtemp(prefix="ktstr-restored-cost-"))
    try:
        t0 = time.monotonic()
        out = subprocess.run([ktstr, "test", "-q", "-p", "no:cacheprovider",
                              "--ktstr-run-dir", str(runs),
                              *(["--kernel", kernel] if kernel else []), str(TEST)],
                             capture_output=True, text=True, check=False)
        wall = time.monotonic() - t0
        if out.returncode != 0:
            raise SystemExit(f"{ktstr} test failed:\n{out.stdout}\n{out.stderr}")
        (sidecar,) = runs.glob("*.json")
        r = json.loads(sidecar.read_text())
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    return {"wall": wall, "wall - cpu wait": wall - r.get("cpu_wait_s", 0.0),
            "restore": r["boot_s"], "body": r["body_s"],
            "restored": float(r["boot_mode"] == "restored")}


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ktstr", action="append", default=[],
                    help="a ktstr executable (repeatable; default: this venv's)")
    ap.add_argument("--kernel", default=None)
    args = ap.parse_args()
    contenders = args.ktstr or [str(Path(sys.executable).parent / "ktstr")]
    for ktstr in contenders:  # saves the guest when there is none yet; not measured
        run_once(ktstr, args.kernel)
    print(f"load before: {loadavg()}")
    figures: dict[str, list[dict[str, float]]] = {k: [] for k in contenders}
    for _ in range(args.runs):
        for ktstr in contenders:
            figures[ktstr].append(run_once(ktstr, args.kernel))
    print(f"load after:  {loadavg()}")
    for ktstr, rows in figures.items():
        cold = sum(1 for r in rows if not r["restored"])
        print(f"{ktstr}: {len(rows)} runs" + (f" ({cold} NOT restored)" if cold else ""))
        for key in ("wall", "wall - cpu wait", "restore", "body"):
            values = [r[key] for r in rows]
            print(f"  {key:16s} median {statistics.median(values):5.2f} s  "
                  f"(min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
