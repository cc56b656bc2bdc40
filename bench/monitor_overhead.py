#!/usr/bin/env python3
"""Does the host-side monitor slow the guest? Work rate with it on and off, same test.

    .venv/bin/python bench/monitor_overhead.py [--runs 4]

Runs one test (a spinner per CPU of a 4-CPU guest under scx_simple, 4 s) through `run_in_vm`,
alternating the monitor on and off (`run_in_vm(monitor=...)`), round-robin so that
host noise falls on both; prints per run the summed work units per second of the workers and, for
the runs with the monitor, its sample count and cost per sample (median, max).
The monitor's cost should sit inside the run-to-run noise: compare the spread of
each column with the difference of the medians.
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

from ktstr import CgroupDef, Ctx, Scheduler, execute_defs, ktstr_test, work  # noqa: E402
from ktstr.checks import AssertResult  # noqa: E402
from ktstr.runner.vmrun import TestLocation, run_in_vm  # noqa: E402
from ktstr.testdef import KtstrTest  # noqa: E402


@ktstr_test(llcs=2, cores=2, threads=1, duration_s=4,
            scheduler=Scheduler("scx_simple"))
def monitor_overhead_spinners(ctx: Ctx) -> AssertResult:
    """A spinner per CPU of a 4-CPU guest under scx_simple."""
    return execute_defs(ctx, [CgroupDef("spin", workers=4, work=work.SpinWait())])


def one_run(test: KtstrTest, monitor: bool, run_dir: Path) -> tuple[float, int, dict[str, float]]:
    where = TestLocation(test_id=f"bench::{'on' if monitor else 'off'}", module_file=__file__,
                         module_name="monitor_overhead",
                         qualname="monitor_overhead_spinners", sys_path=tuple(sys.path),
                         cwd=os.getcwd())
    res = run_in_vm(test, where, kernel_spec=None, run_dir=run_dir, monitor=monitor)
    if not res.passed or res.result is None:
        raise SystemExit(f"run failed: {res.outcome} {res.error}")
    rate = sum(r["work_units"] / max(1e-9, r["wall_time_ns"] / 1e9)
               for r in res.result["reports"])
    mon = res.monitor
    return (rate, 0, {}) if mon is None else (rate, len(mon.samples), mon.sample_cost_us)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--runs", type=int, default=4)
    args = ap.parse_args()
    rates: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="ktstr-bench-") as tmp:
        for i in range(args.runs):
            for monitor in (True, False):
                rate, n, cost = one_run(monitor_overhead_spinners, monitor,
                                        Path(tmp) / f"{i}-{monitor}")
                rates[monitor].append(rate)
                extra = (f"  {n} samples, {cost.get('median', 0):.0f} us median, "
                         f"{cost.get('max', 0):.0f} us max per sample" if monitor else "")
                print(f"run {i + 1} monitor {'on ' if monitor else 'off'}: "
                      f"{rate:10.1f} work units/s{extra}", flush=True)
    for monitor in (True, False):
        r = rates[monitor]
        print(f"monitor {'on ' if monitor else 'off'}: median {statistics.median(r):.1f} "
              f"units/s, min {min(r):.1f}, max {max(r):.1f}")


if __name__ == "__main__":
    main()
