"""The controller's side of a `-n N` run: its summary, and the stop signal.

**The summary says what a serial run's says of its collection.**

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

**A stop signal reaches every worker at once.** A terminal's Ctrl-C and a CI job's
cancel go to the whole process group, so each worker gets the signal itself and stops
its VM (ktstr.runner.signals). A SIGTERM to the controller alone (`kill PID`, a
supervisor that signals one process) would otherwise reach the workers only through
pytest-xdist's teardown, which closes their channel, waits 5 s, sends them SIGINT and
SIGKILLs them 10 s after it began: their VMs would get 5 s to stop and their sidecars
would name the wrong signal. So the controller, once interrupted by a stop signal,
sends that signal to every live worker; a worker already stopping drops the repeat
(ktstr.runner.signals.STOP_GRACE_S).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pytest

from ktstr.runner.signals import Interrupted, forward_signal

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


class Controller:
    """The plugin object of a run that is not an xdist worker: under `-n N` it knows the
    live workers' pids, and passes a stop signal on to them."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}  # worker id -> pid

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodeready(self, node: Any) -> None:
        # pytest-xdist asks every worker for its interpreter's details, pid included, as it
        # sets it up, and keeps the answer: reading it sends nothing to the worker. Only
        # a local worker's (`-n N`, popen): a remote one's pid is another host's.
        spec = node.gateway.spec
        if not getattr(spec, "popen", False) or getattr(spec, "via", None):
            return
        rinfo = getattr(node.gateway, "_cache_rinfo", None)
        pid = getattr(rinfo, "pid", None)
        if isinstance(pid, int):
            self.pids[str(node.gateway.id)] = pid

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        receive(node.config, getattr(node, "workeroutput", None))
        self.pids.pop(str(node.gateway.id), None)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if isinstance(excinfo.value, Interrupted):
            for pid in self.pids.values():
                forward_signal(pid, excinfo.value.signum)
