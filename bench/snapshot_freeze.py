#!/usr/bin/env python3
"""How long does a capture (Op.snapshot) freeze the guest? Median and max per capture.

    .venv/bin/python bench/snapshot_freeze.py [--cpus 4 16] [--captures 10] [--runs 1]

Per vCPU count: one VM under scx_qmap with a spinner per CPU, then a step per
capture (`Op.snapshot("s<i>")` and a 0.2 s hold). Each capture's `frozen_ms`
(QMP stop -> read -> QMP cont, host monotonic clock) and its `read_ms` (the read
alone: runqueues, sched_ext state, and qmap's maps and globals through bpfstate) come
from RunResult.snapshots; no capture pays for opening the guest kernel or deriving
the BPF layout (done before the stop). Prints each run's figures and, per vCPU
count, the median and max over all captures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ktstr import (  # noqa: E402
    AssertResult,
    Ctx,
    HoldSpec,
    Op,
    Scheduler,
    Step,
    execute_steps,
    ktstr_test,
    work,
)
from ktstr.runner.vmrun import TestLocation, run_in_vm  # noqa: E402
from ktstr.testdef import KtstrTest  # noqa: E402

QMAP = Scheduler("scx_qmap")
CAPTURES = int(os.environ.get("KTSTR_BENCH_CAPTURES", "10"))  # the guest reads it too


def _freeze_body(ctx: Ctx) -> AssertResult:
    cpus = len(ctx.topo.all_cpus)
    steps = [Step([Op.add_cgroup("spin"), Op.spawn("spin", work.SpinWait(), cpus)],
                  hold=HoldSpec.fixed(0.5))]
    steps += [Step([Op.snapshot(f"s{i}")], hold=HoldSpec.fixed(0.2)) for i in range(CAPTURES)]
    return execute_steps(ctx, steps)


freeze_4 = ktstr_test(llcs=1, cores=4, threads=1, duration_s=3, scheduler=QMAP,
                      not_starved=False, max_gap_ms=60000, timeout_s=600)(_freeze_body)
freeze_16 = ktstr_test(llcs=2, cores=8, threads=1, duration_s=3, scheduler=QMAP,
                       not_starved=False, max_gap_ms=60000, timeout_s=900)(_freeze_body)


def one_run(test: KtstrTest, qualname: str, run_dir: Path) -> list[tuple[float, float]]:
    where = TestLocation(test_id=f"bench::{qualname}", module_file=__file__,
                         module_name="snapshot_freeze", qualname=qualname,
                         sys_path=tuple(sys.path), cwd=os.getcwd())
    res = run_in_vm(test, where, kernel_spec=None, run_dir=run_dir)
    if len(res.snapshots) != CAPTURES:
        raise SystemExit(f"{qualname}: {len(res.snapshots)} captures, outcome {res.outcome}: "
                         f"{res.error}")
    return [(c.frozen_ms, float(c.as_dict()["read_ms"])) for c in res.snapshots.values()]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--cpus", type=int, nargs="+", default=[4, 16], choices=[4, 16])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    tests = {4: (freeze_4, "freeze_4"), 16: (freeze_16, "freeze_16")}
    with tempfile.TemporaryDirectory(prefix="ktstr-bench-") as tmp:
        for cpus in args.cpus:
            test, qualname = tests[cpus]
            every: list[float] = []
            reads: list[float] = []
            for i in range(args.runs):
                ms = one_run(test, qualname, Path(tmp) / f"{cpus}-{i}")
                every += [f for f, _ in ms]
                reads += [r for _, r in ms]
                print(f"{cpus:2d} vCPUs run {i + 1}: frozen (read) "
                      + " ".join(f"{f:.1f} ({r:.1f})" for f, r in ms) + " ms", flush=True)
            print(f"{cpus:2d} vCPUs: {len(every)} captures, frozen median "
                  f"{statistics.median(every):.1f} ms, max {max(every):.1f} ms; of it the read: "
                  f"median {statistics.median(reads):.2f} ms, max {max(reads):.2f} ms",
                  flush=True)


if __name__ == "__main__":
    main()
