"""`--budget DURATION` (with `--gauntlet`): keep the runs that cover the most per second.

The ktstr items collected (the tests' own variants and their gauntlet variants) are
chosen by ktstr.budget.choose within the budget; the rest are reported through
`pytest_deselected`. Plain pytest functions are always kept and not counted. The
estimates are the mean `wall_s` of the sidecars under `--budget-durations RUN_DIR`
(read as `--shard` reads them, ktstr.pytest_plugin.shard.recorded_durations), else
ktstr.budget.default_estimate. The choice runs before `--shard` splits the collection,
so the N shards are slices of one budgeted selection, the same on every machine given
the same sidecars. The terminal summary says what was chosen, what was left out and
why, and the estimated against the actual time of the chosen runs (under `-n N` too:
ktstr.pytest_plugin.workers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ktstr.budget import Candidate, Choice, choose, default_estimate, parse_duration
from ktstr.pytest_plugin.item import KtstrItem
from ktstr.pytest_plugin.shard import recorded_durations, run_dirs

PLUGIN_NAME = "ktstr-budget"


def addoption(group: pytest.OptionGroup) -> None:
    group.addoption("--budget", dest="ktstr_budget", default=None, metavar="DURATION",
                    help="with --gauntlet: run only the variants that cover the most "
                    "topology features per estimated second within DURATION (90s, 10m, 1h "
                    "or seconds; see docs/gauntlet.md)")
    group.addoption("--budget-durations", dest="ktstr_budget_durations", action="append",
                    default=[], metavar="RUN_DIR", help="estimate --budget's runs by the "
                    "wall times in the sidecars under RUN_DIR (repeatable)")


def candidate(item: KtstrItem, recorded: dict[str, float], cold: bool) -> Candidate:
    test = item.test
    topology = item.variant.topology if item.variant is not None else test.topology
    module = item.nodeid.split("::", 1)[0]
    estimate = recorded.get(item.nodeid)
    if estimate is None:
        estimate = default_estimate(topology, test.duration_s, cold)
    return Candidate(item.nodeid, f"{module}::{item.qualname}", topology, estimate)


class BudgetSelector:
    """The plugin object `--budget` registers (before `--shard`'s, so it chooses first).

    Its summary is what it chose (`choice_lines`, computed where the items are
    collected: in a serial run, or in every `-n N` worker, whence the controller's
    object adopts it, ktstr.pytest_plugin.workers) and the actual time of the chosen
    runs, summed from the test reports wherever they arrive (the controller gets every
    worker's)."""

    def __init__(self, budget_s: float, text: str, duration_dirs: Sequence[Path]) -> None:
        self.budget_s, self.text, self.duration_dirs = budget_s, text, list(duration_dirs)
        self.choice_lines: list[str] | None = None  # None: not chosen (yet)
        self.estimate_s = 0.0
        self.kept: set[str] = set()
        self.seconds: dict[str, float] = {}  # node id -> its setup, call and teardown
        self.called: set[str] = set()

    @pytest.hookimpl(trylast=True)  # choose among what -k, -m and the other filters left
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        recorded = recorded_durations(self.duration_dirs)
        cold = bool(config.getoption("ktstr_cold", None))
        runs = [i for i in items if isinstance(i, KtstrItem)]
        candidates = [candidate(i, recorded, cold) for i in runs]
        choice = choose(candidates, self.budget_s)
        self.choice_lines = self.describe(choice, sum(c.nodeid in recorded for c in candidates))
        self.estimate_s = choice.estimate_s
        self.kept = {c.nodeid for c in choice.chosen}
        drop = [i for i in runs if i.nodeid not in self.kept]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if not isinstance(i, KtstrItem) or i.nodeid in self.kept]

    def describe(self, c: Choice, recorded: int) -> list[str]:
        """What was chosen and left out, and why."""
        total = len(c.chosen) + len(c.left_out)
        source = (f"{recorded} of {total} estimated from sidecars, the rest from "
                  "docs/gauntlet.md's table" if self.duration_dirs
                  else "estimates from docs/gauntlet.md's table")
        lines = [f"budget {self.text}: chose {len(c.chosen)} of {total} runs, estimated "
                 f"{c.estimate_s:.1f} s of {self.budget_s:.0f} s ({source})"]
        lines += [f"budget: chose {x.nodeid} (~{x.estimate_s:.1f} s)" for x in c.chosen]
        lines += [f"budget: left out {x.nodeid} (~{x.estimate_s:.1f} s): over budget"
                  for x in c.left_out]
        return lines

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        if report.when == "call":
            self.called.add(report.nodeid)

    def collected(self) -> dict[str, Any] | None:
        if self.choice_lines is None:
            return None
        return {"lines": self.choice_lines, "estimate_s": self.estimate_s,
                "kept": sorted(self.kept)}

    def adopt(self, state: dict[str, Any]) -> None:
        if self.choice_lines is None:
            self.choice_lines = list(state["lines"])
            self.estimate_s = float(state["estimate_s"])
            self.kept = set(state["kept"])

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line in self.summary_lines():
            terminalreporter.write_line(line)

    def summary_lines(self) -> list[str]:
        if self.choice_lines is None:
            return []
        ran = len(self.called & self.kept)
        actual_s = sum(s for nodeid, s in self.seconds.items() if nodeid in self.kept)
        if ran:
            last = (f"budget: estimated {self.estimate_s:.1f} s, actual {actual_s:.1f} s "
                    f"for {ran} runs")
        else:
            last = f"budget: estimated {self.estimate_s:.1f} s, actual: none ran"
        return [*self.choice_lines, last]


def selector_from_options(budget: str, duration_dirs: Sequence[str]) -> BudgetSelector:
    """The selector for `--budget` and `--budget-durations`, or pytest.UsageError naming
    the bad value."""
    try:
        seconds = parse_duration(budget)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    return BudgetSelector(seconds, budget, run_dirs("--budget-durations", duration_dirs))


def configure(config: pytest.Config) -> None:
    """Register the selector when --budget is given (call it before --shard's selector is
    registered: of two trylast hooks pluggy calls the one registered first last)."""
    budget = config.getoption("ktstr_budget", None)
    dirs = config.getoption("ktstr_budget_durations", None) or []
    if budget is None:
        if dirs:
            raise pytest.UsageError("--budget-durations is used only with --budget DURATION")
        return
    if not config.getoption("ktstr_gauntlet", False):
        raise pytest.UsageError(f"--budget {budget} chooses among the gauntlet's variants "
                                "and --gauntlet is not given; hint: add --gauntlet")
    config.pluginmanager.register(selector_from_options(budget, dirs), PLUGIN_NAME)
