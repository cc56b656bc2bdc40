"""`ktstr report RUN_DIR...`: every test of a run, from its sidecar: outcome, report, snapshots.

Reads only the sidecars (ktstr.runner.sidecar), so it works on run directories
copied from other machines. Several run directories (the shards of one CI run,
`ktstr test --shard K/N`) are reported as one: each directory's tests under a line
naming it, then one total; a test id found in more than one directory is named.
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
    parser = sub.add_parser("report", help="show the results of one or more run directories",
                            description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", metavar="RUN_DIR", type=Path, nargs="+",
                        help="a run directory (one sidecar JSON per test); several are "
                        "reported as one")
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


def duplicates(runs: dict[Path, list[tuple[Path, RunResult]]]) -> list[str]:
    """One line per test id whose sidecars are in more than one of the directories."""
    where: dict[str, list[Path]] = {}
    for run_dir, results in runs.items():
        for _path, res in results:
            if run_dir not in where.setdefault(res.test_id, []):
                where[res.test_id].append(run_dir)
    return [f"  {test_id} is in {len(dirs)} directories: {', '.join(map(str, dirs))}"
            for test_id, dirs in sorted(where.items()) if len(dirs) > 1]


def cmd_report(args: argparse.Namespace) -> int:
    # Every directory is read before anything is printed: one without sidecars is an error.
    runs = {run_dir: sidecars(run_dir) for run_dir in dict.fromkeys(args.run_dirs)}
    several = len(runs) > 1
    blocks: list[str] = []
    for run_dir, results in runs.items():
        if several:  # where the tests below came from
            blocks.append(f"=== {run_dir}: {len(results)} tests ===")
        blocks += ["\n".join(render(res, args.entries)) for _path, res in results]
    print("\n\n".join(blocks))
    every = [r for found in runs.values() for _, r in found]
    failed = sum(WORD.get(r.outcome) is None for r in every)
    where = f" from {len(runs)} run directories" if several else ""
    print(f"\n{len(every)} tests, {failed} failed{where}")
    if several and (dups := duplicates(runs)):
        print("test ids reported more than once:\n" + "\n".join(dups))
    return 0
