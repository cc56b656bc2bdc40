"""The pytest plugin (entry point `pytest11: ktstr`): collect and run `@ktstr_test`s.

Any module-level `KtstrTest` in a collected test file becomes a `KtstrItem`
whatever its name; running it boots a VM (see ktstr.runner). Options:
`--kernel SPEC` (version, cache key, bzImage or kernel tree) and
`--ktstr-run-dir DIR` (where console logs and sidecars go).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from ktstr.pytest_plugin.item import RUN_DIR_KEY, KtstrItem, SummaryReporter
from ktstr.testdef import KtstrTest

__all__ = ["KtstrItem"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ktstr", "ktstr scheduler tests")
    group.addoption("--kernel", dest="ktstr_kernel", default=os.environ.get("KTSTR_KERNEL"),
                    metavar="SPEC", help="kernel to boot: version (7.2), cache key, bzImage "
                    "path or built kernel tree (default: newest cached; env KTSTR_KERNEL)")
    group.addoption("--ktstr-cold", dest="ktstr_cold", action="store_true",
                    help="boot every VM cold: never restore a snapshot of a booted guest, "
                    "never save one (env KTSTR_COLD=1)")
    group.addoption("--ktstr-run-dir", dest="ktstr_run_dir", default=None, metavar="DIR",
                    help="where console logs and result sidecars go "
                    "(default: $KTSTR_RUN_DIR or ./.ktstr-runs/<time>)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ktstr: a @ktstr_test run in a VM")
    chosen = config.getoption("ktstr_run_dir", None) or os.environ.get("KTSTR_RUN_DIR")
    run_dir = Path(chosen) if chosen else (
        Path.cwd() / ".ktstr-runs" / time.strftime("%Y%m%d-%H%M%S"))
    config.stash[RUN_DIR_KEY] = run_dir.absolute()
    config.pluginmanager.register(SummaryReporter(config), "ktstr-summary")


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str,
                              obj: Any) -> pytest.Item | None:
    if isinstance(obj, KtstrTest) and isinstance(collector, pytest.Module):
        item: pytest.Item = KtstrItem.from_parent(collector, name=name, test=obj)
        return item
    return None
