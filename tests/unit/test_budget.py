"""ktstr.budget: the duration syntax, the default estimates, the greedy choice (cheapest
covering runs first, the most valuable one under a tiny budget, ties by node id), and the
estimates the plugin reads from sidecars."""

import random

import pytest

from ktstr.budget import (
    Candidate,
    choose,
    cpu_bucket,
    default_estimate,
    parse_duration,
)
from ktstr.pytest_plugin.budget import selector_from_options
from ktstr.pytest_plugin.shard import recorded_durations
from ktstr.runner.sidecar import SCHEMA, write_json_atomic
from ktstr.topology import Topology


def run(nodeid: str, topo: str, seconds: float, test: str = "t.py::a") -> Candidate:
    return Candidate(nodeid, test, Topology.parse(topo), seconds)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1h", 3600),
                                               ("45", 45), ("7.5", 7.5), (" 2m ", 120)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5", "10x", "1h30m", "m", "ten"])
def test_a_bad_duration_names_the_text(text):
    with pytest.raises(ValueError, match=f"--budget {text!r}: expected a positive duration"):
        parse_duration(text)


def test_buckets_are_powers_of_two():
    assert [cpu_bucket(n) for n in (1, 2, 3, 4, 5, 9, 16, 17)] == [1, 2, 4, 4, 8, 16, 16, 32]


def test_default_estimates_follow_the_table_by_vcpus():
    assert default_estimate(Topology.parse("1n1l4c1t"), 2.0) == 3.59
    assert default_estimate(Topology.parse("1n3l3c1t"), 2.0) == 5.21  # 9 vCPUs: the 16 row
    assert default_estimate(Topology.parse("1n1l4c1t"), 2.0, cold=True) == 12.87
    assert default_estimate(Topology.parse("1n1l4c1t"), 5.0) == pytest.approx(6.59)
    assert default_estimate(Topology.parse("1n8l16c1t"), 2.0) == 20.52  # above: last row
    assert default_estimate(Topology.parse("1n1l2c1t"), 1.0) == 3.59  # a short body: no less


# The own 2-CPU run and four variants of one test.
OWN, TINY1, TINY2, SMT, ODD = ("t.py::a", "t.py::a[gauntlet/tiny-1llc]",
                               "t.py::a[gauntlet/tiny-2llc]", "t.py::a[gauntlet/smt-2llc]",
                               "t.py::a[gauntlet/odd-3llc]")
RUNS = [run(OWN, "1n1l2c1t", 3.0), run(TINY1, "1n1l4c1t", 3.5), run(TINY2, "1n2l2c1t", 4.0),
        run(SMT, "1n2l2c2t", 4.0), run(ODD, "1n3l3c1t", 5.0)]


def test_a_budget_that_covers_everything_takes_the_cheapest_covering_runs_first():
    choice = choose(RUNS, 100.0)
    # own: 5 new features in 3 s; smt-2llc: 8-CPU bucket, 2 LLCs, SMT in 4 s (0.75/s);
    # odd-3llc: 16-CPU bucket, 3 LLCs in 5 s (0.4/s); the 4-CPU bucket: tiny-1llc (3.5 s)
    # before tiny-2llc (4 s), which then adds nothing and is taken last, to fill the budget.
    assert [c.nodeid for c in choice.chosen] == [OWN, SMT, ODD, TINY1, TINY2]
    assert choice.left_out == [] and choice.estimate_s == 19.5


def test_a_tiny_budget_takes_the_most_valuable_runs_that_fit():
    assert [c.nodeid for c in choose(RUNS, 3.0).chosen] == [OWN]
    choice = choose(RUNS, 7.0)  # smt-2llc adds 3 features; the cheaper tiny-1llc only 1
    assert [c.nodeid for c in choice.chosen] == [OWN, SMT]
    assert [c.nodeid for c in choice.left_out] == [TINY1, TINY2, ODD]  # cheapest first
    assert choose(RUNS, 1.0).chosen == []  # nothing fits: everything left out


def test_a_run_that_does_not_fit_leaves_room_for_a_cheaper_one():
    runs = [run("a", "1n3l3c1t", 10.0), run("b", "1n1l4c1t", 2.0)]
    assert [c.nodeid for c in choose(runs, 5.0).chosen] == ["b"]


def test_ties_go_to_the_lower_node_id_whatever_the_order_given():
    runs = [run(f"t.py::a[gauntlet/p{i}]", "1n2l2c1t", 4.0) for i in range(6)]
    for seed in range(5):
        shuffled = runs[:]
        random.Random(seed).shuffle(shuffled)
        choice = choose(shuffled, 8.0)
        assert [c.nodeid for c in choice.chosen] == ["t.py::a[gauntlet/p0]",
                                                     "t.py::a[gauntlet/p1]"]


def test_each_test_is_a_feature_of_its_own():
    runs = [run("t.py::a", "1n1l2c1t", 3.0, "t.py::a"), run("t.py::b", "1n1l2c1t", 3.0, "t.py::b")]
    first = choose(runs, 3.0).chosen
    assert [c.nodeid for c in first] == ["t.py::a"]  # equal value: the lower id


def test_estimates_come_from_earlier_sidecars(tmp_path):
    for i, wall in enumerate((8.0, 12.0)):  # two runs of the same variant: the mean
        write_json_atomic(tmp_path / f"r{i}" / "x.json",
                          {"schema": SCHEMA, "test_id": "t.py::a[gauntlet/odd-3llc]",
                           "wall_s": wall, "boot_s": 0.3, "boot_mode": "restored"})
    (tmp_path / "other.json").write_text("{}")  # not a sidecar: skipped
    recorded = recorded_durations([tmp_path])
    assert recorded == {"t.py::a[gauntlet/odd-3llc]": 10.0}
    runs = [run(i, "1n3l3c1t", recorded.get(i, 1.0)) for i in recorded] + [
        run("t.py::b", "1n3l3c1t", 9.0, "t.py::b")]
    assert [c.nodeid for c in choose(runs, 9.5).chosen] == ["t.py::b"]  # 10 s does not fit


def test_the_selector_refuses_a_bad_budget_or_directory(tmp_path):
    with pytest.raises(pytest.UsageError, match="--budget 'soon'"):
        selector_from_options("soon", [])
    with pytest.raises(pytest.UsageError, match="not a directory"):
        selector_from_options("1m", [str(tmp_path / "nope")])
    assert selector_from_options("1m", [str(tmp_path)]).budget_s == 60.0
