"""`--shard K/N`: keep one slice of the collected items, the same slice on every machine.

N CI runners each run `ktstr test --shard K/N` (K = 1..N) and together run every
collected item exactly once: each item goes to exactly one of the N shards, by a rule
that depends only on the node ids (and, with `--shard-durations`, on the sidecar files
given), never on the machine, the process or Python's salted `hash()`.

- By hash (the default): an item's shard is the SHA-256 of its node id modulo N, so an
  item stays in its shard when other tests are added or removed.
- Balanced (`--shard-durations DIR`, repeatable): the `wall_s` of every sidecar under
  DIR (searched recursively, so a folder of downloaded run directories works) is the
  estimate of its test (the mean when a test has several). The ktstr items are placed
  longest first, each into the shard with the least estimated time so far (ties: the
  lower shard; equal estimates: node id order). A ktstr item without a sidecar is
  estimated at the median of the recorded ones. Plain pytest functions, which have no
  sidecars, go by hash. The history of the default run directory is not used on
  purpose: each runner has its own, and the shards must be computed from the same input
  everywhere (pass the same artifact to every runner).

The items left out are reported through `pytest_deselected`; the terminal summary
says `shard K/N: M of T items` and how they were chosen. A shard left with no item of
a collection that has some ends with status 0, not pytest's 5 (no tests collected): N
larger than the number of tests is a CI matrix, not a mistake.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ktstr.pytest_plugin.item import KtstrItem
from ktstr.runner.sidecar import read_sidecar

PLUGIN_NAME = "ktstr-shard"
_SHARD = re.compile(r"([0-9]+)/([0-9]+)")


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N) with 1 <= K <= N; anything else raises ValueError naming the text."""
    m = _SHARD.fullmatch(text.strip())
    if m is None or not 1 <= int(m[1]) <= int(m[2]):
        raise ValueError(f"--shard {text!r}: expected K/N with 1 <= K <= N (e.g. --shard 2/4)")
    return int(m[1]), int(m[2])


def hash_bin(nodeid: str, n: int) -> int:
    """The 0-based shard of a node id out of n: SHA-256, the same in every process."""
    return int.from_bytes(hashlib.sha256(nodeid.encode()).digest()[:8], "big") % n


def balanced_bins(estimates: Mapping[str, float], n: int) -> dict[str, int]:
    """Greedy longest-first into n bins: each node id (longest estimate first, ties by
    node id) goes to the bin with the least total so far (ties: the lower bin)."""
    loads = [0.0] * n
    bins: dict[str, int] = {}
    for nodeid, seconds in sorted(estimates.items(), key=lambda kv: (-kv[1], kv[0])):
        chosen = min(range(n), key=lambda b: (loads[b], b))
        loads[chosen] += seconds
        bins[nodeid] = chosen
    return bins


def recorded_durations(dirs: Iterable[Path]) -> dict[str, float]:
    """Test id -> mean `wall_s` over the sidecars under dirs (recursively); other JSON
    files and sidecars without a positive wall time are skipped."""
    samples: dict[str, list[float]] = {}
    for root in dirs:
        for path in sorted(root.rglob("*.json")):
            try:
                doc = read_sidecar(path)
            except (ValueError, OSError):
                continue
            test_id, wall = doc.get("test_id"), doc.get("wall_s")
            if isinstance(test_id, str) and isinstance(wall, (int, float)) and wall > 0:
                samples.setdefault(test_id, []).append(float(wall))
    return {t: sum(sorted(v)) / len(v) for t, v in samples.items()}


def assign(nodeids: Sequence[str], ktstr_ids: set[str], n: int,
           durations: Mapping[str, float]) -> dict[str, int]:
    """The 0-based shard of every node id (see the module's docstring for the rule)."""
    if not durations:
        return {i: hash_bin(i, n) for i in nodeids}
    median = statistics.median(sorted(durations.values()))
    estimates = {i: durations.get(i, median) for i in nodeids if i in ktstr_ids}
    bins = balanced_bins(estimates, n)
    return {i: bins[i] if i in bins else hash_bin(i, n) for i in nodeids}


class ShardSelector:
    """The plugin object `--shard` registers: it slices the collection, reports the
    rest as deselected and says what it kept in the terminal summary (under `-n N` the
    controller says what a worker kept, ktstr.pytest_plugin.workers)."""

    def __init__(self, k: int, n: int, duration_dirs: Sequence[Path]) -> None:
        self.k, self.n, self.duration_dirs = k, n, list(duration_dirs)
        self.summary: str | None = None  # None: not sliced (yet)
        self.empty_shard = False  # items were collected, none of them is this shard's

    @pytest.hookimpl(trylast=True)  # slice what -k, -m and the other filters left
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        durations = recorded_durations(self.duration_dirs)
        ids = [item.nodeid for item in items]
        bins = assign(ids, {i.nodeid for i in items if isinstance(i, KtstrItem)}, self.n,
                      durations)
        keep = [i for i in items if bins[i.nodeid] == self.k - 1]
        drop = [i for i in items if bins[i.nodeid] != self.k - 1]
        if drop:
            config.hook.pytest_deselected(items=drop)
        total = len(items)
        items[:] = keep
        if not self.duration_dirs:
            how = "by node-id hash"
        elif durations:
            how = (f"balanced by the durations of {len(durations)} recorded tests in "
                   + ", ".join(map(str, self.duration_dirs)))
        else:
            how = ("by node-id hash: no sidecars in "
                   + ", ".join(map(str, self.duration_dirs)))
        self.summary = f"shard {self.k}/{self.n}: {len(keep)} of {total} items ({how})"
        self.empty_shard = total > 0 and not keep

    def collected(self) -> dict[str, Any] | None:
        if self.summary is None:
            return None
        return {"summary": self.summary, "empty_shard": self.empty_shard}

    def adopt(self, state: dict[str, Any]) -> None:
        if self.summary is None:
            self.summary, self.empty_shard = str(state["summary"]), bool(state["empty_shard"])

    @pytest.hookimpl(trylast=True)  # in the controller, after pytest-xdist's workers are down
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.empty_shard and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.summary:
            terminalreporter.write_line(self.summary)


def addoption(group: pytest.OptionGroup) -> None:
    group.addoption("--shard", dest="ktstr_shard", default=None, metavar="K/N",
                    help="run only shard K of N (1 <= K <= N) of the collected items, the "
                    "same slice on every machine: by a hash of the node id, or balanced by "
                    "--shard-durations")
    group.addoption("--shard-durations", dest="ktstr_shard_durations", action="append",
                    default=[], metavar="RUN_DIR", help="balance --shard by the wall times "
                    "in the sidecars under RUN_DIR (repeatable; give every runner the same)")


def configure(config: pytest.Config) -> None:
    """Register the selector when --shard is given (after --budget's: of two trylast
    hooks pluggy calls the one registered first last, so the shard slices the budget's
    choice)."""
    shard = config.getoption("ktstr_shard", None)
    durations = config.getoption("ktstr_shard_durations", None) or []
    if shard is None:
        if durations:
            raise pytest.UsageError("--shard-durations is used only with --shard K/N")
        return
    config.pluginmanager.register(selector_from_options(shard, durations), PLUGIN_NAME)


def selector_from_options(shard: str, duration_dirs: Sequence[str]) -> ShardSelector:
    """The selector for `--shard` and `--shard-durations`, or pytest.UsageError naming
    the bad value."""
    try:
        k, n = parse_shard(shard)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    return ShardSelector(k, n, run_dirs("--shard-durations", duration_dirs))


def run_dirs(option: str, given: Sequence[str]) -> list[Path]:
    """The run directories an option names (`--shard-durations`, `--budget-durations`),
    or pytest.UsageError naming the first that is not a directory."""
    dirs = [Path(d) for d in given]
    for d in dirs:
        if not d.is_dir():
            raise pytest.UsageError(f"{option} {d}: not a directory; hint: pass a run "
                                    "directory of an earlier run (or a folder of them)")
    return dirs
