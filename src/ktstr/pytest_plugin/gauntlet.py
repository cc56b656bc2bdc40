"""`--gauntlet` and `--max-cpus`: every `@ktstr_test` on the presets it admits.

With `--gauntlet` each collected test also yields one item per preset of
ktstr.gauntlet.PRESETS its constraints admit, named `NAME[gauntlet/PRESET]`, so
`-k` and junit see the preset. A variant over the CPU ceiling (`--max-cpus N`;
default: the host's CPUs under KVM, ktstr.gauntlet.TCG_MAX_CPUS under emulation)
is not collected, and the run's terminal summary says so once, with the reason.
Without `--gauntlet` only the tests' own variants are collected.
"""

from __future__ import annotations

import os

import pytest

from ktstr.errors import ConfigError
from ktstr.gauntlet import Ceiling, Variant, cpu_ceiling, left_out_line, variants
from ktstr.pytest_plugin.item import KtstrItem
from ktstr.testdef import KtstrTest
from ktstr.vm.accel import choose_accel

CEILING_KEY = pytest.StashKey[Ceiling]()
LEFT_OUT_KEY = pytest.StashKey[list[Variant]]()


def addoption(group: pytest.OptionGroup) -> None:
    group.addoption("--gauntlet", dest="ktstr_gauntlet", action="store_true", default=False,
                    help="also run every test on each gauntlet preset it admits "
                    "(ids NAME[gauntlet/PRESET]; see docs/gauntlet.md)")
    group.addoption("--max-cpus", dest="ktstr_max_cpus", type=int, default=None,
                    metavar="N", help="leave out gauntlet presets with more than N CPUs "
                    "(default: the host's CPUs under KVM, a measured ceiling under TCG)")


def configure(config: pytest.Config) -> None:
    """The run's CPU ceiling, once, when --gauntlet asks for presets."""
    given = config.getoption("ktstr_max_cpus", None)
    if not config.getoption("ktstr_gauntlet", False):
        if given is not None:  # it caps presets, and none run: refused, not ignored
            raise pytest.UsageError(f"--max-cpus {given} caps the gauntlet's presets and "
                                    "--gauntlet is not given; hint: add --gauntlet")
        return
    try:
        ceiling = cpu_ceiling(given, choose_accel(), os.cpu_count() or 1)
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[CEILING_KEY] = ceiling
    config.stash[LEFT_OUT_KEY] = []


def items_for(collector: pytest.Module, name: str, test: KtstrTest) -> list[pytest.Item]:
    """The test's own item, then one per admitted preset under the ceiling."""
    items: list[pytest.Item] = [KtstrItem.from_parent(collector, name=name, test=test)]
    ceiling = collector.config.stash.get(CEILING_KEY, None)
    if ceiling is None:
        return items
    run, left_out = variants(test.constraints, test.memory_mb, ceiling)
    collector.config.stash[LEFT_OUT_KEY].extend(left_out)
    items += [KtstrItem.from_parent(collector, name=name + v.suffix, test=test, variant=v,
                                    qualname=name) for v in run]
    return items


def terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    ceiling = config.stash.get(CEILING_KEY, None)
    if ceiling is None:
        return
    line = left_out_line(config.stash[LEFT_OUT_KEY], ceiling)
    if line:
        terminalreporter.write_line(line)
