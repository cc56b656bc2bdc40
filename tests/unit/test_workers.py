"""ktstr.pytest_plugin.workers: what a worker's collection decided reaches the
controller's objects as plain data, the first worker's only, never over an object's own."""

import pickle
from types import SimpleNamespace

import pluggy

from ktstr.budget import Candidate, Choice
from ktstr.pytest_plugin import workers
from ktstr.pytest_plugin.budget import BudgetSelector
from ktstr.pytest_plugin.shard import ShardSelector
from ktstr.topology import Topology


def config(**extra: object) -> SimpleNamespace:
    return SimpleNamespace(pluginmanager=pluggy.PluginManager("pytest"), **extra)


def worker(summary: str) -> SimpleNamespace:
    """A worker's config after collection: a shard slice and a budget choice."""
    cfg = config(workeroutput={})
    shard = ShardSelector(1, 2, [])
    shard.summary = summary
    budget = BudgetSelector(10.0, "10", [])
    run = Candidate("t::a", "t::a", Topology(1, 1, 2, 1), 3.6)
    budget.choice_lines = budget.describe(Choice(10.0, [run], []), 0)
    budget.estimate_s, budget.kept = 3.6, {"t::a"}
    cfg.pluginmanager.register(shard, "ktstr-shard")
    cfg.pluginmanager.register(budget, "ktstr-budget")
    workers.send(cfg)
    return cfg


def controller() -> tuple[SimpleNamespace, ShardSelector, BudgetSelector]:
    cfg = config()
    shard, budget = ShardSelector(1, 2, []), BudgetSelector(10.0, "10", [])
    cfg.pluginmanager.register(shard, "ktstr-shard")
    cfg.pluginmanager.register(budget, "ktstr-budget")
    return cfg, shard, budget


def test_the_first_workers_state_is_adopted_and_said_as_the_serial_summary():
    first, second = worker("shard 1/2: 1 of 2 items"), worker("shard 1/2: other")
    output = first.workeroutput
    assert pickle.loads(pickle.dumps(output)) == output  # plain data, what execnet carries
    cfg, shard, budget = controller()
    workers.receive(cfg, None)  # a worker that died sends nothing
    workers.receive(cfg, output)
    workers.receive(cfg, second.workeroutput)
    assert shard.summary == "shard 1/2: 1 of 2 items"
    budget.pytest_runtest_logreport(SimpleNamespace(nodeid="t::a", when="call", duration=4.0))
    assert budget.summary_lines() == [
        "budget 10: chose 1 of 1 runs, estimated 3.6 s of 10 s (estimates from "
        "docs/gauntlet.md's table)",
        "budget: chose t::a (~3.6 s)",
        "budget: estimated 3.6 s, actual 4.0 s for 1 runs"]


def test_an_object_that_collected_keeps_its_own_state():
    cfg, shard, _ = controller()
    shard.summary = "shard 1/2: mine"
    workers.receive(cfg, worker("shard 1/2: theirs").workeroutput)
    assert shard.summary == "shard 1/2: mine"


def test_a_serial_run_sends_nothing():
    cfg = config()
    cfg.pluginmanager.register(ShardSelector(1, 2, []), "ktstr-shard")
    workers.send(cfg)  # no workeroutput: not a worker
    assert not hasattr(cfg, "workeroutput")
