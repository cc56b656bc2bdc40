#!/usr/bin/env python3
"""Signals at random moments of a restored trivial test: exit status, leftovers, time to clean.

    .venv/bin/python bench/signal_soak.py [--runs 5] [--tries 4] [--seed N] [-n N]

First `--runs` undisturbed runs of `ktstr test bench/trivial_test.py` (restored; the
first may boot and save the guest), each in a process group of its own, give the run's
wall time W. Then, `--tries` times each, a signal at a moment drawn uniformly from
[0, W): SIGINT, SIGTERM and SIGKILL to the run's process group (a terminal, a CI
system), and SIGINT, SIGTERM and SIGKILL to qemu alone, the harness started with SIGINT
ignored (a background job; drawn from [0, Q) after qemu appears, Q the undisturbed
runs' qemu lifetime: a late one comes after the guest's result). Per row: the exit
statuses, the sidecar's outcome, what was left (a process of the run or of qemu's
group, a /dev/shm or socket name of its VM), the seconds from the signal until all of
it was gone, the scratch disk images left in the run directory (a SIGKILLed harness
cannot remove its own), and whether the saved guest survived untouched. Printed as a
table.

With `-n N` each run is `ktstr test -n N` of N trivial tests of one vCPU (one host CPU
each, so N VMs can run at once; a VM waits when other runs on the host hold the CPUs)
in pytest-xdist workers: the same rows for the group; SIGINT and SIGTERM to the
group, and SIGTERM to the controller alone, at a moment drawn from [0, Q) after the
first qemu appears ("VMs up"); no qemu-only rows (the serial rows cover them). A
run's outcome is its N sidecars' outcomes; what was left counts the workers and every
qemu of any of them.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
KTSTR = str(Path(sys.executable).parent / "ktstr")
TEST = f"{HERE / 'trivial_test.py'}::trivial"
ONE_CPU_TEST = """
from ktstr import ktstr_test


@ktstr_test(llcs=1, cores=1, threads=1, duration_s=1)
def trivial(ctx):
    return None
"""
SHM_AND_SOCKETS = (Path("/dev/shm"), Path(os.environ.get("TMPDIR", "/tmp")))


@dataclass
class Try:
    status: int
    outcome: str  # the sidecar's, "-" when there is none
    error: str
    left: list[str]
    clean_s: float  # signal -> harness, its qemus and their names all gone
    snapshot: str = ""
    qemu_s: float = 0.0  # how long its qemu lived (first seen -> harness gone)
    sent: bool = True  # False: the run (or its qemu) had ended before the moment came
    scratch: int = 0  # scratch disk images left in the run directory


@dataclass
class Row:
    name: str
    tries: list[Try] = field(default_factory=list)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Run:
    """One `ktstr test` of the trivial test in its own process group, watched for qemu;
    with `workers`, `ktstr test -n workers` of as many one-vCPU trivial tests."""

    def __init__(self, ignore_sigint: bool = False, workers: int = 0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ktstr-soak-"))

        def child() -> None:
            signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)
            os.setpgrp()

        tests = [TEST]
        if workers:
            module = self.dir / "test_soak.py"
            module.write_text(ONE_CPU_TEST + "".join(
                f"\n\ntrivial_{i} = trivial\n" for i in range(1, workers)))
            tests = ["-n", str(workers), str(module)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen([KTSTR, "test", "-q", "-p", "no:cacheprovider",
                                      "--ktstr-run-dir", str(self.dir / "runs"), *tests],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=child, cwd=self.dir if workers else None)
        self.qemus: dict[int, str] = {}  # pid -> run id of its guest-RAM names
        self.workers: set[int] = set()  # pytest-xdist workers seen
        self.qemu_at = 0.0  # when the first qemu was seen

    def watch(self) -> None:
        for pid in _descendants(self.proc.pid):
            # A VM's qemu names its guest-RAM files (not `qemu --version`).
            cmdline = _cmdline(pid)
            m = re.search(r"ktstr-([0-9a-f]{12})-node0", cmdline)
            if pid not in self.qemus and m:
                self.qemus[pid] = m.group(1)
                self.qemu_at = self.qemu_at or time.monotonic()
            elif "execnet" in cmdline or "sys.stdin.readline" in cmdline:
                self.workers.add(pid)

    def wait_until(self, moment: float) -> None:
        while time.monotonic() < moment and self.proc.poll() is None:
            self.watch()
            time.sleep(0.01)

    def leftovers(self) -> list[str]:
        left = [f"harness {self.proc.pid}"] if _alive(self.proc.pid) else []
        left += [f"worker {pid}" for pid in self.workers if _alive(pid)]
        left += [f"qemu {pid}" for pid in self.qemus if _alive(pid) or _group_alive(pid)]
        for run_id in filter(None, self.qemus.values()):
            left += [p.name for d in SHM_AND_SOCKETS for p in d.glob(f"ktstr-{run_id}*")]
        return left

    def finish(self, sent: float, snapshot: str = "", delivered: bool = True) -> Try:
        try:
            status = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        deadline = time.monotonic() + 30
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.01)
        clean_s = time.monotonic() - sent
        scratch = len(list(self.dir.rglob("scratch-*.img")))
        qemu_s = time.monotonic() - self.qemu_at if self.qemu_at else 0.0
        docs = [json.loads(p.read_text()) for p in sorted((self.dir / "runs").glob("*.json"))]
        outcome = "+".join(sorted(d.get("outcome", "?") for d in docs)) or "-"
        doc = docs[0] if docs else {}
        shutil.rmtree(self.dir, ignore_errors=True)
        return Try(status, outcome, doc.get("error", ""), left, clean_s,
                   doc.get("snapshot", "") or snapshot, qemu_s, delivered, scratch)


def undisturbed(workers: int = 0) -> Try:
    run = Run(workers=workers)
    run.wait_until(float("inf"))
    return run.finish(run.started)


def to_group(sig: signal.Signals, within: float, workers: int = 0,
             controller_only: bool = False, vms_up: bool = False) -> Try:
    """The signal at a moment drawn from [0, within) after the start or, `vms_up`, after
    the first qemu appears."""
    run = Run(workers=workers)
    while vms_up and not run.qemus and run.proc.poll() is None:
        run.wait_until(time.monotonic() + 0.01)
    run.wait_until(time.monotonic() + random.uniform(0, within))
    sent = time.monotonic()
    delivered = run.proc.poll() is None
    if delivered:
        (os.kill if controller_only else os.killpg)(run.proc.pid, sig)
    return run.finish(sent, delivered=delivered)


def to_qemu(sig: signal.Signals, within: float) -> Try:
    run = Run(ignore_sigint=True)
    while not run.qemus and run.proc.poll() is None:
        run.wait_until(time.monotonic() + 0.01)
    run.wait_until(time.monotonic() + random.uniform(0, within))
    sent = time.monotonic()
    alive = [pid for pid in run.qemus if _alive(pid)]
    for pid in alive:
        os.kill(pid, sig)
    return run.finish(sent, delivered=bool(alive))


def _counts(values: list[object]) -> str:
    return ", ".join(f"{v}x{n}" if n > 1 else str(v)
                     for v, n in collections.Counter(values).most_common())


def table(rows: list[Row]) -> str:
    head = ("case", "n", "too late", "exit status", "outcome", "leftovers", "clean s med/max",
            "scratch img left")
    lines = [head]
    for row in rows:
        late = sum(not t.sent for t in row.tries)
        ts = [t for t in row.tries if t.sent] or row.tries
        cleans = [t.clean_s for t in ts]
        left = sum(bool(t.left) for t in ts)
        lines.append((row.name, str(len(row.tries)), str(late), _counts([t.status for t in ts]),
                      _counts([t.outcome for t in ts]),
                      "none" if not left else f"{left} runs: {ts[0].left}",
                      f"{statistics.median(cleans):.2f}/{max(cleans):.2f}",
                      str(sum(t.scratch for t in ts))))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tries", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("-n", dest="workers", type=int, default=0, metavar="N",
                    help="runs of N one-vCPU tests in N pytest-xdist workers")
    args = ap.parse_args()
    random.seed(args.seed)
    normal = Row("undisturbed")
    for _ in range(args.runs):
        normal.tries.append(undisturbed(args.workers))
    if any(t.status != 0 for t in normal.tries):
        raise SystemExit(f"an undisturbed run failed: {normal.tries}")
    key = normal.tries[-1].snapshot
    state = Path(os.environ.get("KTSTR_CACHE_DIR", Path.home() / ".cache/ktstr"),
                 "snapshots", key, "state")
    saved = state.stat().st_mtime_ns
    wall = statistics.median(t.clean_s for t in normal.tries)
    qemu_life = statistics.median(t.qemu_s for t in normal.tries)
    rows = [normal]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        row = Row(f"{sig.name} to the group")
        row.tries = [to_group(sig, wall, args.workers) for _ in range(args.tries)]
        rows.append(row)
    if args.workers:  # the moments when the VMs run, and the controller alone
        for sig in (signal.SIGINT, signal.SIGTERM):
            row = Row(f"{sig.name} to the group, VMs up")
            row.tries = [to_group(sig, qemu_life, args.workers, vms_up=True)
                         for _ in range(args.tries)]
            rows.append(row)
        row = Row("SIGTERM to the controller, VMs up")
        row.tries = [to_group(signal.SIGTERM, qemu_life, args.workers, controller_only=True,
                              vms_up=True) for _ in range(args.tries)]
        rows.append(row)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL) if not args.workers else ():
        row = Row(f"{sig.name} to qemu only")
        row.tries = [to_qemu(sig, qemu_life) for _ in range(args.tries)]
        rows.append(row)
    what = f"ktstr test -n {args.workers} of {args.workers} tests" if args.workers \
        else "ktstr test"
    print(f"host CPUs {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; undisturbed run "
          f"({what}, restored): wall W median {wall:.2f} s, its qemu lived Q median "
          f"{qemu_life:.2f} s. A signal to the group comes at a moment drawn from [0, W) "
          "after the start, one to qemu from [0, Q) after qemu appears. Outcome: the "
          "sidecar's, '-' when there is none (no test was running yet, or SIGKILL). Too "
          "late: the run (or its qemu) had ended before the moment; the other columns "
          "count only the signals sent")
    print(table(rows))
    kept = state.exists() and state.stat().st_mtime_ns == saved
    print(f"saved guest {key}: {'kept, never saved anew' if kept else 'DISCARDED or re-saved'}")
    errors = {t.error.split(";")[0] for r in rows[4:] for t in r.tries
              if t.error and not args.workers}
    for text in sorted(errors):
        print(f"  qemu-only error: {text}")


if __name__ == "__main__":
    main()
