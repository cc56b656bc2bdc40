"""`--gauntlet` and `--max-cpus`: every `@ktstr_test` on the presets it admits.

With `--gauntlet` each collected test also yields one item per preset of
ktstr.gauntlet.PRESETS its constraints admit, named `NAME[gauntlet/PRESET]`, so
`-k` and junit see the preset. A variant over the CPU ceiling (`--max-cpus N`;
default: the host's CPUs under KVM, ktstr.gauntlet.TCG_MAX_CPUS under emulation)
is not collected, and the run's terminal summary says so once, with the reason (under
`-n N` too: ktstr.pytest_plugin.workers).
Without `--gauntlet` only the tests' own variants are collected.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from ktstr.errors import ConfigError
from ktstr.gauntlet import (
    Ceiling,
    Variant,
    cpu_ceiling,
    left_out_line,
    performance_ceiling,
    variants,
)
from ktstr.pytest_plugin.item import KtstrItem
from ktstr.testdef import KtstrTest
from ktstr.vm.accel import choose_accel, choose_tcg_threads
from ktstr.vm.cpulock import host_cpus, vcpu_thread_count

PLUGIN_NAME = "ktstr-gauntlet"


def addoption(group: pytest.OptionGroup) -> None:
    group.addoption("--gauntlet", dest="ktstr_gauntlet", action="store_true", default=False,
                    help="also run every test on each gauntlet preset it admits "
                    "(ids NAME[gauntlet/PRESET]; see docs/gauntlet.md)")
    group.addoption("--max-cpus", dest="ktstr_max_cpus", type=int, default=None,
                    metavar="N", help="leave out gauntlet presets with more than N CPUs "
                    "(default: the host's CPUs under KVM, a measured ceiling under TCG)")


def configure(config: pytest.Config) -> None:
    """Register the run's `GauntletCollection` when --gauntlet asks for presets."""
    given = config.getoption("ktstr_max_cpus", None)
    if not config.getoption("ktstr_gauntlet", False):
        if given is not None:  # it caps presets, and none run: refused, not ignored
            raise pytest.UsageError(f"--max-cpus {given} caps the gauntlet's presets and "
                                    "--gauntlet is not given; hint: add --gauntlet")
        return
    try:
        accel = choose_accel()
        ceiling = cpu_ceiling(given, accel, os.cpu_count() or 1)
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    config.pluginmanager.register(GauntletCollection(ceiling, accel), PLUGIN_NAME)


class GauntletCollection:
    """The plugin object `--gauntlet` registers: the run's CPU ceiling, the variants
    collection left out over it, and the summary's line that names them (under `-n N`
    a worker's, relayed by ktstr.pytest_plugin.workers)."""

    def __init__(self, ceiling: Ceiling, accel: str) -> None:
        self.ceiling = ceiling
        self.accel = accel
        # Left out, by the ceiling that left them out (a performance_mode test has its own).
        self.left_out: dict[Ceiling, list[Variant]] = {}
        self.has_collected = False
        self.adopted: list[str] | None = None

    def ceiling_for(self, test: KtstrTest) -> Ceiling:
        """The run's ceiling, or a performance_mode test's lower one."""
        if not test.performance_mode:
            return self.ceiling
        threads = vcpu_thread_count(2, self.accel, choose_tcg_threads(test.may_attach_sched_ext))
        return performance_ceiling(self.ceiling, len(host_cpus()), threads == 1)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.has_collected = True

    def summary_lines(self) -> list[str]:
        if self.adopted is not None:
            return self.adopted
        return [left_out_line(out, ceiling) for ceiling, out in self.left_out.items() if out]

    def collected(self) -> dict[str, Any] | None:
        return {"lines": self.summary_lines()} if self.has_collected else None

    def adopt(self, state: dict[str, Any]) -> None:
        if not self.has_collected and self.adopted is None:
            self.adopted = list(state["lines"])

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line in self.summary_lines():
            terminalreporter.write_line(line)


def items_for(collector: pytest.Module, name: str, test: KtstrTest) -> list[pytest.Item]:
    """The test's own item, then one per admitted preset under the ceiling."""
    items: list[pytest.Item] = [KtstrItem.from_parent(collector, name=name, test=test)]
    gauntlet = collector.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if not isinstance(gauntlet, GauntletCollection):
        return items
    ceiling = gauntlet.ceiling_for(test)
    run, left_out = variants(test.constraints, test.memory_mb, ceiling)
    gauntlet.left_out.setdefault(ceiling, []).extend(left_out)
    items += [KtstrItem.from_parent(collector, name=name + v.suffix, test=test, variant=v,
                                    qualname=name) for v in run]
    return items
