"""Snapshot / SnapshotMap / ctx.snapshots on hand-built capture dicts (no VM)."""

from typing import Any

import pytest

from ktstr import KtstrError, Op, Snapshot, SnapshotMap
from ktstr.errors import ConfigError
from ktstr.scenario.snapshot import Snapshots, UnknownSnapshot, snapshot_lines

CAPTURE: dict[str, Any] = {
    "name": "a", "taken_at": 1700000000.0, "frozen_ms": 4.5, "missing": [], "jiffies": 5000,
    "rq": {"0": {"nr_running": 2, "clock_ns": 100, "scx_nr_running": 2, "local_dsq_depth": 1,
                 "curr_pid": 42, "curr_comm": "spin"},
           "1": {"nr_running": 0, "clock_ns": 90, "scx_nr_running": 0, "local_dsq_depth": 0,
                 "curr_pid": 0, "curr_comm": "swapper/1"}},
    "scx": {"attached": True, "ops_name": "qmap", "enable_state": "SCX_ENABLED",
            "events": {"select_cpu_fallback": 3, "dispatch_keep_last": 0}},
    "scheduler": "qmap",
    "vars": {"nr_enqueued": 17, "stats": {"nr_disp": 5, "hist": [1, 2, 3]}, "verbose": False},
    "maps": {
        "queue_arr": {"type": "array", "key_size": 4, "value_size": 8, "max_entries": 4,
                      "entries": [{"key": i, "value": {"cnt": i * 10}} for i in range(4)],
                      "truncated": False},
        "cpu_ctx": {"type": "percpu_array", "key_size": 4, "value_size": 8, "max_entries": 1,
                    "entries": [{"key": 0, "value": [{"n": 1}, {"n": 2}]}],
                    "truncated": False},
        "tasks": {"type": "hash", "key_size": 4, "value_size": 16, "max_entries": 4096,
                  "entries": [{"key": {"pid": 7}, "value": 1}], "truncated": True},
    },
}


def test_vars_plain_and_dotted():
    s = Snapshot(CAPTURE, hits=2)
    assert (s.name, s.frozen_ms, s.hits) == ("a", 4.5, 2)
    assert s.var("nr_enqueued") == 17
    assert s.var("stats.nr_disp") == 5 and s.var("stats.hist.2") == 3
    assert s.var("verbose") is False
    assert s.vars() == ["nr_enqueued", "stats", "verbose"]


def test_unknown_names_list_what_exists():
    s = Snapshot(CAPTURE)
    with pytest.raises(KtstrError, match=r"'nr_enqueued', 'stats', 'verbose'"):
        s.var("nr_dispatched")
    with pytest.raises(KtstrError, match=r"stats has no 'nope' \(it has: \['hist', 'nr_disp'\]"):
        s.var("stats.nope")
    with pytest.raises(KtstrError, match=r"'cpu_ctx', 'queue_arr', 'tasks'"):
        s.map("qmap_arr")
    with pytest.raises(KtstrError, match=r"no runqueue of cpu 5 \(it has: 0, 1\)"):
        s.rq(5)


def test_rq_and_cpus():
    s = Snapshot(CAPTURE)
    assert s.cpus() == [0, 1]
    assert s.rq(0)["curr_comm"] == "spin" and s.rq(1)["clock_ns"] == 90


def test_map_access():
    m = Snapshot(CAPTURE).map("queue_arr")
    assert isinstance(m, SnapshotMap) and len(m) == 4 and m.max_entries == 4
    assert [e.key for e in m] == [0, 1, 2, 3]
    assert m.at(2).value == {"cnt": 20}
    assert m.get(3) == {"cnt": 30} and m.get(9) is None and m.get(9, "x") == "x"
    with pytest.raises(KtstrError, match="no entry at 7"):
        m.at(7)
    with pytest.raises(KtstrError, match="not a per-CPU map"):
        m.cpu(0)
    h = Snapshot(CAPTURE).map("tasks")
    assert h.get({"pid": 7}) == 1 and h.truncated


def test_per_cpu_narrowing():
    m = Snapshot(CAPTURE).map("cpu_ctx")
    assert m.per_cpu
    assert m.cpu(1).at(0).value == {"n": 2}
    with pytest.raises(KtstrError, match="no CPU 2"):
        m.cpu(2)


def test_missing_parts_are_said():
    bare = {"name": "early", "frozen_ms": 1.0,
            "missing": ["no sched_ext scheduler attached: no maps or vars"], "rq": {}}
    s = Snapshot(bare)
    assert s.maps() == [] and s.vars() == []
    with pytest.raises(KtstrError, match=r"it has: none\); no sched_ext scheduler attached"):
        s.var("x")
    assert "missing: no sched_ext scheduler" in s.line()


def test_summary_renders_rq_vars_and_maps():
    text = "\n".join(Snapshot(CAPTURE, hits=1).summary(shown=2))
    assert "snapshot 'a': 4.5 ms frozen, hits 1, 2 cpus, qmap, 3 maps, 3 vars" in text
    assert "cpu0: nr_running=2 scx_nr_running=2 local_dsq=1 clock=100 curr=spin[42]" in text
    assert "scx: SCX_ENABLED, ops qmap, events: select_cpu_fallback=3" in text
    assert "nr_enqueued = 17" in text and "stats.nr_disp = 5" in text
    assert "stats.hist = [1, 2, 3]" in text
    assert "map queue_arr (array): 4 entries of max 4" in text
    assert "[1] = {'cnt': 10}" in text and "... 2 more" in text
    assert "map tasks (hash): 1 entries of max 4096 (truncated)" in text
    assert snapshot_lines({"a": CAPTURE}) == [Snapshot(CAPTURE).line()]


class FakeControl:
    def __init__(self) -> None:
        self.store: dict[str, dict[str, Any]] = {}

    def capture(self, name: str) -> dict[str, Any]:
        self.store[name] = {**CAPTURE, "name": name, "hits": 1}
        return {"name": name, "frozen_ms": 1.0}

    def get(self, name: str) -> dict[str, Any] | None:
        return self.store.get(name)

    def names(self) -> list[str]:
        return list(self.store)


def test_ctx_snapshots_mapping():
    control = FakeControl()
    control.capture("a")
    control.capture("b")
    snaps = Snapshots(control)
    assert snaps["b"].name == "b" and sorted(snaps) == ["a", "b"] and len(snaps) == 2
    assert "a" in snaps and "c" not in snaps
    with pytest.raises(UnknownSnapshot, match=r"no snapshot named 'c' \(taken so far: 'a', 'b'\)"):
        snaps["c"]
    with pytest.raises(KeyError):
        snaps["c"]


def test_snapshots_without_a_host_say_so():
    with pytest.raises(KtstrError, match="needs a host"):
        Snapshots(None)["a"]


def test_op_snapshot_validates_its_name():
    assert repr(Op.snapshot("a")) == "Op.snapshot('a')"
    for bad in ("", None, 3):
        with pytest.raises(ConfigError, match=r"Op\.snapshot: name"):
            Op.snapshot(bad)  # type: ignore[arg-type]
