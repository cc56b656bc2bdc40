#!/usr/bin/env python3
"""What one Schbench request's matrix work costs, in Python and in C, and what a run yields.

    .venv/bin/python bench/schbench_math.py            # in a guest (one boot)
    .venv/bin/python bench/schbench_math.py --here     # on this machine
        [--kernel SPEC] [--topo 1n1l2c1t] [--seconds 3]

Prints, for schbench's footprint (-F 256 KiB, 104x104) and the reduced 32 KiB
(36x36) ktstr used while the multiply was Python:

- ms per request (schbench's -n 5 multiplications) of the Python multiply and
  of ktstr._native's C one, single-threaded, and their ratio;
- a `Schbench` run of `--seconds` in one worker, with each implementation:
  requests/s, request and wakeup latency p50/p99 (µs) and schbench's sched delay.

Why: issue 3 allows a C helper only where a benchmark shows Python cannot reach
a realistic rate; this is that benchmark, and the before/after of the move.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

FOOTPRINTS_KB = (32, 256)
OPERATIONS = 5  # schbench's -n


def per_request_ms(kb: int, native: bool, budget_s: float = 1.0) -> float:
    """Best-of wall ms of one request's multiplications, repeated for ~budget_s."""
    from ktstr.work.schbench import Matrices, SchbenchConfig

    m = Matrices(SchbenchConfig(cache_footprint_kb=kb).matrix_size, native=native)
    best = float("inf")
    end = time.monotonic() + budget_s
    runs = 0
    while runs < 3 or time.monotonic() < end:
        t = time.perf_counter()
        m.multiply(OPERATIONS)
        best = min(best, time.perf_counter() - t)
        runs += 1
    return best * 1e3


def schbench_run(kb: int, native: bool, secs: float) -> str:
    import ktstr.work.schbench as sb
    from ktstr.workload.config import WorkloadConfig
    from ktstr.workload.handle import WorkloadHandle

    saved = sb._native_math
    if not native:
        sb._native_math = None  # the forked worker inherits the Python path
    try:
        work = sb.Schbench(sb.SchbenchConfig(cache_footprint_kb=kb))
        handle = WorkloadHandle.spawn(WorkloadConfig(workers=1, work=work), start=True)
        time.sleep(secs)
        reports = list(handle.stop_and_collect())
    finally:
        sb._native_math = saved
    r = reports[0]
    if r.error:
        return f"error: {r.error[:160]}"
    m = r.metrics
    return (f"rps={m.get('rps', 0):7.1f} "
            f"request p50={m.get('request_latency_pct50.0', 0):.0f} "
            f"p99={m.get('request_latency_pct99.0', 0):.0f}us "
            f"wakeup p50={m.get('wakeup_latency_pct50.0', 0):.0f} "
            f"p99={m.get('wakeup_latency_pct99.0', 0):.0f}us "
            f"sched_delay worker={m.get('sched_delay_worker_us', 0):.0f}us "
            f"threads={m.get('worker_threads', 0):.0f} native={m.get('native_math', 0):.0f}")


def measure(secs: float) -> int:
    import os

    from ktstr.work.schbench import SchbenchConfig, _native_math

    if _native_math is None:
        print("ktstr._native is not built: run `make venv`")
        return 1
    print(f"# {os.cpu_count()} CPUs; ms per request ({OPERATIONS} multiplications), "
          "one thread, best of ~1 s")
    for kb in FOOTPRINTS_KB:
        n = SchbenchConfig(cache_footprint_kb=kb).matrix_size
        py = per_request_ms(kb, native=False)
        c = per_request_ms(kb, native=True)
        print(f"-F {kb:3d} KiB ({n}x{n}): python {py:9.2f} ms  C {c:8.3f} ms  "
              f"python/C {py / c:5.1f}x")
    print(f"# Schbench, 1 worker, {secs:g} s, default mode (-m 1, -t = CPUs, -n 5, -s 100)")
    for kb in FOOTPRINTS_KB:
        for native in (False, True):
            print(f"-F {kb:3d} {'C     ' if native else 'python'} {schbench_run(kb, native, secs)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--here", action="store_true", help="measure on this machine, no VM")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--kernel", default=None)
    ap.add_argument("--topo", default="1n1l2c1t")
    args = ap.parse_args()
    if args.guest or args.here:
        return measure(args.seconds)
    from bench.inguest import rerun_in_guest

    return rerun_in_guest(__file__, ["--guest", "--seconds", f"{args.seconds:g}"], args.topo,
                          args.kernel)


if __name__ == "__main__":
    raise SystemExit(main())
