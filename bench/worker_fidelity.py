#!/usr/bin/env python3
"""How much work each work type does, what the harness costs, and the wake-latency floor.

    .venv/bin/python bench/worker_fidelity.py [--kernel SPEC] [--seconds 2] [--topo 1n1l2c1t]
        [--only NAME[,NAME...]]

Boots ONE guest (`ktstr.runner.shell.run_shell`) and runs this script inside
it with `--guest`, which prints:

- for every work type in `WorkType.ALL_NAMES` that can be built by name: its
  work rate (work units per second per worker) over `--seconds`, with the
  worker count its group size needs; a type that fails says why;
- the harness overhead: ns per iteration of a bare `spin_batch` loop and of
  `WorkLoop.spin()` (the same batch plus the checkpoint: clock read,
  `sched_getcpu`, stop check), and their difference;
- the wake-latency floor: p50/p99 (µs) of `FutexPingPong` and, when helper
  "timers" has landed it, `TimerLatency`, next to `cyclictest -m -q -D 5 -i
  1000 -t 1 -h` in the same guest (rt-tests: `bash scripts/setup-host.sh`).

Why: a scheduler test judges rates and latencies the work types produce, so a
reader needs to know what a unit of each costs under this emulation and how
far the Python harness's latency floor sits above a C reference.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _import_all_work_types() -> None:
    """Import every ktstr.work module so each type registers, whether or not the
    package re-exports it yet."""
    import ktstr.work

    for mod in pkgutil.iter_modules(ktstr.work.__path__):
        try:
            importlib.import_module(f"ktstr.work.{mod.name}")
        except Exception as e:  # a half-landed module must not hide the others
            print(f"# import ktstr.work.{mod.name} failed: {e}")


def _run_type(work: object, workers: int, secs: float) -> list[object]:
    from ktstr.workload.config import WorkloadConfig
    from ktstr.workload.handle import WorkloadHandle

    handle = WorkloadHandle.spawn(WorkloadConfig(workers=workers, work=work),  # type: ignore[arg-type]
                                  start=True)
    time.sleep(secs)
    return list(handle.stop_and_collect())


def overhead(n: int = 20_000) -> tuple[float, float]:
    """ns per iteration of a bare batch loop and of WorkLoop.spin()."""
    import threading

    from ktstr.work.loop import SPIN_BATCH, WorkLoop, spin_batch

    x = 1
    t = time.perf_counter_ns()
    for _ in range(n):
        x = spin_batch(SPIN_BATCH, x)
    bare = (time.perf_counter_ns() - t) / n
    loop = WorkLoop(threading.Event())
    loop.begin()
    t = time.perf_counter_ns()
    for _ in range(n):
        loop.spin()
    return bare, (time.perf_counter_ns() - t) / n


def cyclictest() -> str:
    exe = shutil.which("cyclictest")
    if exe is None:
        return "cyclictest: not installed (bash scripts/setup-host.sh installs rt-tests)"
    out = subprocess.run([exe, "-m", "-q", "-D", "5", "-i", "1000", "-t", "1",
                          "-h", "20000"], capture_output=True, text=True, check=False)
    hist: list[tuple[int, int]] = []
    summary = ""
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            hist.append((int(parts[0]), int(parts[1])))
        elif line.startswith(("# Min Latencies", "# Avg Latencies", "# Max Latencies",
                              "# Histogram Overflows")):
            summary += " " + line[2:].replace(" Latencies", "").strip()
    total = sum(c for _, c in hist)
    if not total:
        return f"cyclictest: no samples (rc {out.returncode}): {out.stderr.strip()[:200]}"

    def pct(p: float) -> int:
        run = 0
        for us, c in hist:
            run += c
            if run >= p / 100 * total:
                return us
        return hist[-1][0]
    return f"cyclictest -i 1000: p50={pct(50)}us p99={pct(99)}us n={total};{summary}"


def guest(secs: float, only: set[str] | None = None) -> int:
    _import_all_work_types()
    from ktstr.work.base import WorkType

    print(f"# work rate over {secs:g}s (work units/s per worker)")
    floors: dict[str, str] = {}
    for name in WorkType.ALL_NAMES:
        if only and name not in only:
            continue
        try:
            work = WorkType.from_name(name)
        except Exception:
            continue  # needs explicit parameters (Sequence, Custom)
        workers = work.group_size or (1 if name in ("Schbench", "Taobench") else 2)
        try:
            reports = _run_type(work, workers, secs)
        except Exception as e:
            print(f"{name:28s} FAILED: {type(e).__name__}: {str(e)[:120]}")
            continue
        errs = [r.error for r in reports if r.error]  # type: ignore[attr-defined]
        rates = [r.work_units / (r.wall_time_ns / 1e9)  # type: ignore[attr-defined]
                 for r in reports if r.wall_time_ns > 0]  # type: ignore[attr-defined]
        rate = sum(rates) / len(rates) if rates else 0.0
        notes = sorted({n for r in reports for n in r.notes})  # type: ignore[attr-defined]
        extra = (" error: " + errs[0][:80]) if errs else ""
        extra += (" notes: " + "; ".join(notes)[:100]) if notes else ""
        print(f"{name:28s} {rate:12.1f} /s  ({workers} workers){extra}")
        if name == "Schbench" and reports:
            m = reports[0].metrics  # type: ignore[attr-defined]
            print(f"{'':28s} request p50/p99 {m.get('request_latency_pct50.0', 0):.0f}/"
                  f"{m.get('request_latency_pct99.0', 0):.0f}us, wakeup p50/p99 "
                  f"{m.get('wakeup_latency_pct50.0', 0):.0f}/"
                  f"{m.get('wakeup_latency_pct99.0', 0):.0f}us, "
                  f"matrix {m.get('matrix_size', 0):.0f}, native {m.get('native_math', 0):.0f}")
        if name in ("FutexPingPong", "TimerLatency"):
            lat = [r.wake_latency_us for r in reports  # type: ignore[attr-defined]
                   if r.wake_latency_us.count]  # type: ignore[attr-defined]
            if lat:
                floors[name] = (f"p50={min(w.p50 for w in lat):.0f}us "
                                f"p99={max(w.p99 for w in lat):.0f}us "
                                f"n={sum(w.count for w in lat)}")
    bare, looped = overhead()
    print(f"# harness overhead: bare batch {bare / 1e3:.1f}us/iter, WorkLoop.spin "
          f"{looped / 1e3:.1f}us/iter, checkpoint {max(0.0, looped - bare) / 1e3:.2f}us "
          f"({100 * (looped - bare) / bare:.1f}% of a unit)")
    print("# wake-latency floor")
    for name in ("FutexPingPong", "TimerLatency"):
        print(f"{name:28s} " + floors.get(name, "missing (not registered or no samples)"))
    print(cyclictest())
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--kernel", default=None)
    ap.add_argument("--topo", default="1n1l2c1t")
    ap.add_argument("--only", default="", help="comma-separated work type names")
    args = ap.parse_args()
    if args.guest:
        return guest(args.seconds, {n for n in args.only.split(",") if n} or None)
    from bench.inguest import rerun_in_guest

    extra = ["--only", args.only] if args.only else []
    return rerun_in_guest(__file__, ["--guest", "--seconds", f"{args.seconds:g}", *extra],
                          args.topo, args.kernel)


if __name__ == "__main__":
    raise SystemExit(main())
