"""The pytest plugin (entry point `pytest11: ktstr`): collect and run `@ktstr_test`s.

Any module-level `KtstrTest` in a collected test file becomes a `KtstrItem`
whatever its name; running it boots a VM (see ktstr.runner). Options:
`--kernel SPEC` (version, cache key, bzImage or kernel tree),
`--ktstr-run-dir DIR` (where console logs and sidecars go), `--ktstr-cold` and
`--ktstr-no-monitor` (what `ktstr test --cold`/`--no-monitor` pass on). Each
option's default is its setting (ktstr.settings: KTSTR_KERNEL, KTSTR_RUN_DIR,
KTSTR_COLD, KTSTR_MONITOR); a bad setting is a usage error. `--gauntlet` and
`--max-cpus N` add each test's gauntlet variants (ktstr.pytest_plugin.gauntlet);
`--shard K/N` and `--shard-durations DIR` keep one slice of the collection
(ktstr.pytest_plugin.shard); `--budget DURATION` (with `--gauntlet`) keeps the runs
that cover the most per estimated second, before `--shard` slices them
(ktstr.pytest_plugin.budget).

From configuration to the end of the session SIGTERM, like Ctrl-C, ends the
run as interrupted (ktstr.runner.signals): the running test's VM is stopped,
its sidecar says `interrupted` and by which signal, pytest exits with 2.

`-n N` (pytest-xdist) runs N tests, so N VMs, at once: the controller chooses
the run directory and hands it to every worker, so the sidecars are those of a
serial run, in one directory; each VM reserves its host CPUs (ktstr.vm.cpulock).
What the workers' collection decided (the gauntlet's variants left out, the budget's
choice, the shard's slice) reaches the controller's summary, said once
(ktstr.pytest_plugin.workers), and a stop signal sent to the controller alone is
passed on to the workers.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from ktstr.errors import ConfigError
from ktstr.pytest_plugin import budget, gauntlet, shard, workers
from ktstr.pytest_plugin.item import RUN_DIR_KEY, KtstrItem, SummaryReporter
from ktstr.runner.signals import stop_on_signals
from ktstr.settings import settings
from ktstr.testdef import KtstrTest

__all__ = ["KtstrItem"]

_SIGNALS_KEY = pytest.StashKey[contextlib.ExitStack]()
#: The key of the controller's run directory in an xdist worker's `workerinput`.
_WORKER_RUN_DIR = "ktstr_run_dir"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ktstr", "ktstr scheduler tests")
    group.addoption("--kernel", dest="ktstr_kernel", default=None,
                    metavar="SPEC", help="kernel to boot: version (7.2), cache key, bzImage "
                    "path or built kernel tree (default: $KTSTR_KERNEL, else the newest "
                    "cached)")
    # None: the setting decides (KTSTR_COLD, KTSTR_MONITOR); see KtstrItem.runtest.
    group.addoption("--ktstr-cold", dest="ktstr_cold", action="store_true", default=None,
                    help="boot every VM cold: never restore a snapshot of a booted guest, "
                    "never save one (default: $KTSTR_COLD, off)")
    group.addoption("--ktstr-no-monitor", dest="ktstr_monitor", action="store_false",
                    default=None, help="run VMs without the host-side monitor; its checks "
                    "are not judged (default: $KTSTR_MONITOR, on)")
    group.addoption("--ktstr-run-dir", dest="ktstr_run_dir", default=None, metavar="DIR",
                    help="where console logs and result sidecars go "
                    "(default: $KTSTR_RUN_DIR or ./.ktstr-runs/<time>)")
    shard.addoption(group)
    gauntlet.addoption(group)
    budget.addoption(group)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ktstr: a @ktstr_test run in a VM")
    signals = contextlib.ExitStack()
    signals.enter_context(stop_on_signals())
    config.stash[_SIGNALS_KEY] = signals
    try:
        current = settings()
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    if config.getoption("ktstr_kernel", None) is None:
        config.option.ktstr_kernel = current.kernel
    # An xdist worker takes the controller's run directory: one for the whole session.
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    chosen = (workerinput.get(_WORKER_RUN_DIR) or config.getoption("ktstr_run_dir", None)
              or current.run_dir)
    run_dir = Path(chosen) if chosen else (
        Path.cwd() / ".ktstr-runs" / time.strftime("%Y%m%d-%H%M%S"))
    config.stash[RUN_DIR_KEY] = run_dir.absolute()
    config.pluginmanager.register(SummaryReporter(config), "ktstr-summary")
    if not workerinput:  # a serial run, or the controller of -n N (its workers' summary)
        config.pluginmanager.register(workers.Controller(), "ktstr-controller")
    # Each registers its plugin object when its option asks for one. The budget's
    # before --shard's: of two trylast hooks, pluggy calls the one registered first
    # last, so the budget chooses and the shard slices its choice.
    gauntlet.configure(config)
    budget.configure(config)
    shard.configure(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller, before starting a worker (`-n N`): hand it the
    session's run directory, so every worker's sidecars land in the one directory."""
    node.workerinput[_WORKER_RUN_DIR] = str(node.config.stash[RUN_DIR_KEY])


def pytest_unconfigure(config: pytest.Config) -> None:
    signals = config.stash.get(_SIGNALS_KEY, None)
    if signals is not None:
        signals.close()


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Drop the traceback entries that have no line number before pytest formats the
    interruption: a signal can land on an instruction without one (Python 3.11), and
    pytest's report of it then fails with a TypeError (exit status 1, not 2)."""
    excinfo.traceback = excinfo.traceback.filter(has_line_number)


def has_line_number(entry: Any) -> bool:
    try:
        return isinstance(entry.lineno, int)
    except TypeError:  # tb_lineno is None
        return False


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str,
                              obj: Any) -> list[pytest.Item] | None:
    if isinstance(obj, KtstrTest) and isinstance(collector, pytest.Module):
        return gauntlet.items_for(collector, name, obj)
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    workers.send(session.config)  # an xdist worker: what it collected, for the summary

