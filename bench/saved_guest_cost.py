#!/usr/bin/env python3
"""How long a saved guest (ktstr.vm.snapshot) takes to save and to restore.

    .venv/bin/python bench/saved_guest_cost.py [--restores 5] [--saves 2]

Runs a trivial test (bench/saved_guest_test.py) through `run_in_vm` with a memory size
of its own, so its saved guest is this bench's alone: first `--saves` cold boots, each
saving the guest anew (`RunResult.snapshot_save_s`: how long the guest stood still),
then `--restores` runs restoring it (`RunResult.boot_s`: qemu start -> restored guest
running, and the wall time of the whole run). The saved guest is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import saved_guest_test  # noqa: E402
from ktstr.runner.vmrun import RunResult, TestLocation, run_in_vm  # noqa: E402
from ktstr.vm.snapshot import clean_snapshots  # noqa: E402

WHERE = TestLocation(test_id="bench::saved_guest_trivial",
                     module_file=saved_guest_test.__file__,
                     module_name=saved_guest_test.__name__, qualname="saved_guest_trivial",
                     sys_path=tuple(sys.path), cwd=os.getcwd())


def one_run() -> tuple[RunResult, float]:
    runs = Path(tempfile.mkdtemp(prefix="ktstr-bench-"))
    t0 = time.monotonic()
    r = run_in_vm(saved_guest_test.saved_guest_trivial, WHERE, kernel_spec=None, run_dir=runs)
    wall = time.monotonic() - t0
    if not r.passed:
        raise SystemExit(f"run failed: {r.outcome} {r.error}; console: {r.console_log}")
    shutil.rmtree(runs)
    return r, wall


def line(name: str, values: list[float]) -> str:
    return (f"  {name:34s} median {statistics.median(values):6.3f} s  "
            f"(min {min(values):.3f}, max {max(values):.3f}, n={len(values)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--saves", type=int, default=2)
    ap.add_argument("--restores", type=int, default=5)
    args = ap.parse_args()
    r, _ = one_run()  # builds what the guest needs; restored or saved, start afresh
    if r.snapshot:
        clean_snapshots([r.snapshot])
    saves, restores, walls = [], [], []
    for _ in range(args.saves):
        r, _ = one_run()
        if r.boot_mode != "cold" or not r.snapshot_save_s:
            raise SystemExit(f"expected a cold boot that saves, got {r.boot_mode}")
        saves.append(r.snapshot_save_s)
        clean_snapshots([r.snapshot])
    one_run()  # saves it for the restores
    for _ in range(args.restores):
        r, wall = one_run()
        if r.boot_mode != "restored":
            raise SystemExit(f"expected a restore, got {r.boot_mode} ({r.restore_fallback})")
        restores.append(r.boot_s)
        walls.append(wall)
    clean_snapshots([r.snapshot])
    print(f"host CPUs {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    print(line("save: guest stood still", saves))
    print(line("restore: qemu start -> running", restores))
    print(line("restored run, wall", walls))


if __name__ == "__main__":
    main()
