"""The selection rule of `--shard K/N` (ktstr.pytest_plugin.shard): every item in exactly
one shard, the same shards in every process, balanced bins from recorded durations."""

import json
import os
import subprocess
import sys

import pytest

from ktstr.pytest_plugin.shard import (
    assign,
    balanced_bins,
    hash_bin,
    parse_shard,
    recorded_durations,
)
from ktstr.runner.sidecar import SCHEMA, write_json_atomic

IDS = [f"tests/t{i % 7}.py::case_{i}[gauntlet/tiny-{i % 3}llc]" for i in range(200)]


def shards(ids, n, durations=None, ktstr=None):
    bins = assign(ids, set(ids) if ktstr is None else ktstr, n, durations or {})
    return [[i for i in ids if bins[i] == k] for k in range(n)]


@pytest.mark.parametrize("text, want", [("1/1", (1, 1)), ("2/4", (2, 4)), ("4/4", (4, 4)),
                                        (" 3/10 ", (3, 10))])
def test_parse_accepts_k_of_n(text, want):
    assert parse_shard(text) == want


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1", "1/2/3", "-1/2", "1.0/2",
                                  ""])
def test_parse_refuses_naming_the_value(text):
    with pytest.raises(ValueError, match=f"--shard {text!r}: expected K/N with 1 <= K <= N"):
        parse_shard(text)


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_hash_slices_are_disjoint_and_cover_everything(n):
    parts = shards(IDS, n)
    assert sorted(i for part in parts for i in part) == sorted(IDS)
    assert sum(map(len, parts)) == len(IDS)
    assert all(parts) or n > len(IDS)  # 200 ids: no shard of 8 is empty


def test_an_items_shard_does_not_depend_on_the_others():
    whole = assign(IDS, set(IDS), 4, {})
    assert assign(IDS[:50], set(IDS), 4, {}) == {i: whole[i] for i in IDS[:50]}


def test_hash_is_the_same_in_a_process_with_another_hash_seed():
    here = [hash_bin(i, 5) for i in IDS]
    code = ("import json, sys; from ktstr.pytest_plugin.shard import hash_bin; "
            "print(json.dumps([hash_bin(i, 5) for i in json.load(sys.stdin)]))")
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps(IDS),
                             capture_output=True, text=True, check=True, timeout=60,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(out.stdout) == here


def test_balanced_bins_are_longest_first_into_the_least_loaded():
    durations = {"a": 10.0, "b": 9.0, "c": 6.0, "d": 5.0, "e": 4.0, "f": 4.0}
    bins = balanced_bins(durations, 2)
    # a->0, b->1, c->1 (9<10), d->0 (10<15), e->0 (15=15: lower bin), f->1
    assert bins == {"a": 0, "b": 1, "c": 1, "d": 0, "e": 0, "f": 1}
    loads = [sum(s for i, s in durations.items() if bins[i] == b) for b in (0, 1)]
    assert loads == [19.0, 19.0]


def test_equal_durations_are_placed_in_node_id_order():
    durations = {i: 3.0 for i in ("z", "m", "a", "q")}
    assert balanced_bins(durations, 2) == {"a": 0, "m": 1, "q": 0, "z": 1}
    assert balanced_bins(dict(reversed(list(durations.items()))), 2) == \
        balanced_bins(durations, 2)


def test_recorded_durations_from_sidecars(tmp_path):
    shard1, shard2 = tmp_path / "shard-1", tmp_path / "shard-2" / "run"
    for d, test_id, wall in ((shard1, "t.py::slow", 30.0), (shard2, "t.py::slow", 40.0),
                             (shard2, "t.py::quick", 2.0), (shard1, "t.py::crashed", 0.0)):
        d.mkdir(parents=True, exist_ok=True)
        write_json_atomic(d / f"{test_id.split('::')[1]}{len(str(d))}.json",
                          {"schema": SCHEMA, "test_id": test_id, "outcome": "passed",
                           "wall_s": wall})
    write_json_atomic(shard1 / "notes.json", {"not": "a sidecar"})
    assert recorded_durations([tmp_path]) == {"t.py::slow": 35.0, "t.py::quick": 2.0}


def test_balanced_by_durations_with_unrecorded_and_plain_items():
    ktstr = {f"k{i}" for i in range(6)}
    plain = [f"test_plain{i}" for i in range(5)]
    ids = sorted(ktstr) + plain
    durations = {"k0": 100.0, "k1": 60.0, "k2": 50.0, "k3": 10.0, "gone": 7.0}
    parts = shards(ids, 2, durations, ktstr)
    assert sorted(parts[0] + parts[1]) == sorted(ids) and not set(parts[0]) & set(parts[1])
    # k4, k5 unrecorded: the median (50). Longest first (k0 100, k1 60, then k2, k4, k5
    # at 50 in id order, k3 10): k0->0, k1->1, k2->1 (60<100), k4->0 (100<110),
    # k5->1 (110<150), k3->0 (150<160): 160 s each.
    assert [i for i in parts[0] if i in ktstr] == ["k0", "k3", "k4"]
    assert [i for i in parts[1] if i in ktstr] == ["k1", "k2", "k5"]
    for p in plain:  # plain functions have no sidecars: they go by hash
        assert p in parts[hash_bin(p, 2)]
