"""The guest's side of a test request, on fakes: the test comes from the guest's own import
of its module; the topology checked is the test's, or the run's override."""

import sys
import types

import pytest

from ktstr.guest import agent
from ktstr.guest.topocheck import TopologyView
from ktstr.protocol import Outcome, RunOverrides, TestLocation, TestRequest
from ktstr.testdef import ktstr_test

MODULE = "ktstr_unit_guest_request_tests"


class Port:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, msg: dict) -> None:
        self.sent.append(msg)


def seen(cpus: int) -> TopologyView:
    """One node, one LLC, `cpus` CPUs without SMT."""
    online = frozenset(range(cpus))
    return TopologyView(online=online, llcs=[online], nodes={0: online},
                        siblings={c: frozenset([c]) for c in online})


@pytest.fixture
def module(monkeypatch, tmp_path):
    mod = types.ModuleType(MODULE)
    mod.two_cpus = ktstr_test(llcs=1, cores=2, threads=1)(lambda ctx: None)
    mod.not_a_test = 3
    monkeypatch.setitem(sys.modules, MODULE, mod)
    monkeypatch.setattr(agent, "run_body", lambda test, accel, own, staged, host: {
        "outcome": Outcome.PASSED, "ran": test, "own": own})
    monkeypatch.chdir(tmp_path)
    return mod


def request(qualname: str, overrides: RunOverrides | None = None) -> TestRequest:
    where = TestLocation(test_id="t", module_file="/nonexistent.py", module_name=MODULE,
                         qualname=qualname, cwd="/")
    return TestRequest(where=where, accel="tcg", overrides=overrides or RunOverrides())


def test_the_test_and_its_topology_come_from_the_guests_import(module, monkeypatch):
    monkeypatch.setattr(TopologyView, "read", classmethod(lambda cls: seen(2)))
    port = Port()
    result = agent.run_request(port, request("two_cpus"))  # type: ignore[arg-type]
    assert result["ran"] is module.two_cpus and result["own"] is None
    assert [m["type"] for m in port.sent] == ["topology"] and port.sent[0]["ok"]


def test_the_runs_topology_override_is_the_one_checked(module, monkeypatch):
    monkeypatch.setattr(TopologyView, "read", classmethod(lambda cls: seen(2)))
    port = Port()
    result = agent.run_request(port, request("two_cpus", RunOverrides(topology="1n1l4c1t")))  # type: ignore[arg-type]
    assert result["outcome"] == Outcome.ERROR
    assert result["error"].startswith("guest topology does not match 1n1l4c1t: ")
    assert not port.sent[0]["ok"]


def test_a_test_the_guest_cannot_load_still_answers_the_topology_first(module, monkeypatch):
    monkeypatch.setattr(TopologyView, "read", classmethod(lambda cls: seen(2)))
    port = Port()
    result = agent.run_request(port, request("not_a_test"))  # type: ignore[arg-type]
    assert result["outcome"] == Outcome.ERROR
    assert result["error"] == (f"cannot load the test in the guest: {MODULE}.not_a_test is "
                               "not a @ktstr_test")
    assert port.sent[0]["type"] == "topology" and not port.sent[0]["ok"]
    assert port.sent[0]["problems"] == [result["error"]]
