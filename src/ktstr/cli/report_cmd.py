"""`ktstr report RUN_DIR`: every test of a run, from its sidecar: outcome, report, snapshots.

Reads only the sidecars (ktstr.runner.sidecar), so it works on a run directory
copied from another machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError
from ktstr.protocol import Outcome
from ktstr.runner.result import RunResult
from ktstr.runner.sidecar import read_sidecar

WORD = {Outcome.PASSED: "PASS", Outcome.INCONCLUSIVE: "INCONCLUSIVE"}


def register(sub: Any) -> None:
    parser = sub.add_parser("report", help="show the results of a run directory",
                            description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                        help="a run directory (one sidecar JSON per test)")
    parser.add_argument("--entries", type=int, default=3, metavar="N",
                        help="map entries shown per map (default 3)")
    parser.set_defaults(func=cmd_report)


def sidecars(run_dir: Path) -> list[tuple[Path, RunResult]]:
    """The run's results in sidecar name order; other JSON files there are skipped."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory; hint: pass a run directory, e.g. "
                          ".ktstr-runs/<time> (or --ktstr-run-dir of `ktstr test`)")
    found = []
    for path in sorted(run_dir.glob("*.json")):
        try:
            found.append((path, RunResult.from_dict(read_sidecar(path))))
        except (ValueError, OSError):
            continue
    if not found:
        raise ConfigError(f"no ktstr sidecars in {run_dir}; hint: a run directory holds one "
                          "<test>.json per test run")
    return found


def render(res: RunResult, entries: int = 3) -> list[str]:
    """One test's block: the outcome line, the report text, each snapshot's summary."""
    word = WORD.get(res.outcome, "FAIL")
    lines = [f"{word} {res.test_id} [{res.outcome}, topo={res.topology} "
             f"sched={res.scheduler} accel={res.accel} wall={res.wall_s:.1f}s]"]
    if res.error:
        lines += ["  " + line for line in res.error.splitlines()]
    if res.report:
        lines.append(res.report.rstrip())
    vars_ = res.scheduler_vars
    if vars_ is not None:
        lines.append(f"  scheduler_vars: requested {vars_.requested}, "
                     + (f"read back {vars_.read_back}" if vars_.read_back is not None
                        else f"not written: {vars_.error or '?'}"))
    if res.snapshots:
        lines.append("--- snapshots ---")
        for snap in res.snapshots.values():
            lines += ["  " + line for line in snap.summary(entries)]
    return lines


def cmd_report(args: argparse.Namespace) -> int:
    results = sidecars(args.run_dir)
    for i, (_path, res) in enumerate(results):
        if i:
            print()
        print("\n".join(render(res, args.entries)))
    failed = sum(WORD.get(r.outcome) is None for _, r in results)
    print(f"\n{len(results)} tests, {failed} failed")
    return 0
