"""The summary of a `-n N` run says what a serial run's says of its collection.

Under pytest-xdist the workers collect and the controller never does, so what
`--gauntlet`, `--budget` and `--shard` decide at collection (the variants left out,
the budget's choice, the shard's slice) is known in the workers only, while the
terminal summary is the controller's. Each of their plugin objects (a `Relayed`)
gives that state as plain data, what execnet carries; every worker puts it in
`config.workeroutput` (pytest-xdist's channel from worker to controller) as its
session ends, and the controller, as each worker goes down (`pytest_testnodedown`,
`node.workeroutput`), hands it to its own object of the same name, which prints it
as in a serial run. Every worker collects the same items, so all of them send the
same state: the first to arrive is kept and said once.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pytest

#: The key of the relayed states in a worker's `workeroutput`: plugin name -> state.
OUTPUT_KEY = "ktstr_collection"


@runtime_checkable
class Relayed(Protocol):
    """A plugin object whose summary comes from what it saw at collection."""

    def collected(self) -> dict[str, Any] | None:
        """Its collection-time state as plain data (None: it has not collected)."""

    def adopt(self, state: dict[str, Any]) -> None:
        """Take a worker's state, unless it collected itself or already took one."""


def relayed(config: pytest.Config) -> dict[str, Relayed]:
    """The registered plugin objects that relay their state, by name."""
    return {name: plugin for name, plugin in config.pluginmanager.list_name_plugin()
            if name and name.startswith("ktstr-") and isinstance(plugin, Relayed)}


def send(config: pytest.Config) -> None:
    """In a worker: put every relayed state in its `workeroutput` (else nothing)."""
    output: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if output is None:
        return
    states = {name: p.collected() for name, p in relayed(config).items()}
    output[OUTPUT_KEY] = {name: s for name, s in states.items() if s is not None}


def receive(config: pytest.Config, workeroutput: dict[str, Any] | None) -> None:
    """In the controller: hand a finished worker's states to the objects of their names.
    A worker that died has no output; another one's comes."""
    states = (workeroutput or {}).get(OUTPUT_KEY) or {}
    plugins = relayed(config)
    for name, state in states.items():
        if name in plugins:
            plugins[name].adopt(state)
