"""`ktstr report RUN_DIR`: every test of a run, from its sidecar: outcome, report, snapshots.

Reads only the sidecars (ktstr.runner.sidecar), so it works on a run directory
copied from another machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError
from ktstr.runner.sidecar import read_sidecar
from ktstr.scenario.snapshot import Snapshot

WORD = {"passed": "PASS", "inconclusive": "INCONCLUSIVE"}


def register(sub: Any) -> None:
    parser = sub.add_parser("report", help="show the results of a run directory",
                            description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                        help="a run directory (one sidecar JSON per test)")
    parser.add_argument("--entries", type=int, default=3, metavar="N",
                        help="map entries shown per map (default 3)")
    parser.set_defaults(func=cmd_report)


def sidecars(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The run's sidecars in name order; other JSON files there are skipped."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory; hint: pass a run directory, e.g. "
                          ".ktstr-runs/<time> (or --ktstr-run-dir of `ktstr test`)")
    found = []
    for path in sorted(run_dir.glob("*.json")):
        try:
            found.append((path, read_sidecar(path)))
        except (ValueError, OSError):
            continue
    if not found:
        raise ConfigError(f"no ktstr sidecars in {run_dir}; hint: a run directory holds one "
                          "<test>.json per test run")
    return found


def render(doc: dict[str, Any], entries: int = 3) -> list[str]:
    """One test's block: the outcome line, the report text, each snapshot's summary."""
    word = WORD.get(str(doc.get("outcome")), "FAIL")
    lines = [f"{word} {doc.get('test_id')} [{doc.get('outcome')}, topo={doc.get('topology')} "
             f"sched={doc.get('scheduler')} accel={doc.get('accel')} "
             f"wall={float(doc.get('wall_s', 0.0)):.1f}s]"]
    if doc.get("error"):
        lines += ["  " + line for line in str(doc["error"]).splitlines()]
    if doc.get("report"):
        lines.append(str(doc["report"]).rstrip())
    vars_ = doc.get("scheduler_vars") or {}
    if vars_:
        lines.append(f"  scheduler_vars: requested {vars_.get('requested')}, "
                     + (f"read back {vars_['read_back']}" if "read_back" in vars_
                        else f"not written: {vars_.get('error', '?')}"))
    captures = doc.get("snapshots") or {}
    if captures:
        lines.append("--- snapshots ---")
        for capture in captures.values():
            lines += ["  " + line for line in Snapshot(capture).summary(entries)]
    return lines


def cmd_report(args: argparse.Namespace) -> int:
    docs = sidecars(args.run_dir)
    for i, (_path, doc) in enumerate(docs):
        if i:
            print()
        print("\n".join(render(doc, args.entries)))
    failed = sum(WORD.get(str(d.get("outcome"))) is None for _, d in docs)
    print(f"\n{len(docs)} tests, {failed} failed")
    return 0
