"""Bodies for test_monitor_agrees.py: the guest reads its own runqueues while the host
monitor reads them from guest RAM (not collected).

Spinners with known pinning on a 4-CPU guest: three on cpu1, one on cpu2, none on
cpu3; cpu0 runs the guest's own reader (`ktstr.system.sched_debug`, debugfs
`sched/debug`) every `READ_PERIOD_S`. Each reading travels to the host as one
`sched_debug {json}` detail line of the (passing) result.
"""

from __future__ import annotations

import json
import os
import time

from ktstr import AssertResult, CgroupDef, Ctx, Scheduler, execute_defs, ktstr_test, work
from ktstr.system.sched_debug import sched_debug

from .probes import Sampler

SPINNERS = {1: 3, 2: 1}  # cpu -> spinners pinned there; cpu3 has none
READER_CPU = 0
READ_PERIOD_S = 0.25
PREFIX = "sched_debug "

# The guest's own fairness checks are not what this proves (three spinners share cpu1
# on purpose), and neither is the monitor's imbalance check (3 on cpu1 vs 0 on cpu3,
# a kworker could push it to 4 for a moment): both are relaxed.
RELAXED = dict(not_starved=False, max_spread_pct=100.0, max_gap_ms=60000,
               max_imbalance_ratio=16.0)


def _spin_and_read(ctx: Ctx) -> AssertResult:
    readings: list[str] = []

    def read() -> None:
        os.sched_setaffinity(0, {READER_CPU})  # this thread only; cheap after the first
        d = sched_debug()
        end = time.monotonic_ns()  # CLOCK_MONOTONIC, the clock of the header's ktime
        readings.append(json.dumps({
            "ktime": d.ktime_ns, "end": end, "cpu_clk": d.cpu_clk_ns, "jiffies": d.jiffies,
            "cpus": [[c.cpu, c.nr_running, c.clock_ns] for c in d.cpus]}))

    defs = [CgroupDef(f"on{cpu}", workers=n, work=work.SpinWait(), affinity=frozenset({cpu}))
            for cpu, n in SPINNERS.items()]
    with Sampler(read, READ_PERIOD_S):
        result = execute_defs(ctx, defs)
    result.details.extend(PREFIX + r for r in readings)
    return result


@ktstr_test(llcs=1, cores=4, threads=1, duration_s=3, **RELAXED)
def pinned_spinners_under_eevdf(ctx: Ctx) -> AssertResult:
    return _spin_and_read(ctx)


@ktstr_test(llcs=1, cores=4, threads=1, duration_s=3, scheduler=Scheduler("scx_simple"),
            **RELAXED)
def pinned_spinners_under_simple(ctx: Ctx) -> AssertResult:
    return _spin_and_read(ctx)
