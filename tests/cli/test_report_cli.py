"""`ktstr report RUN_DIR...` through the real entry point, on a sidecar saved from a real run
(tests/vm/test_snapshot_capture.py's scx_qmap run; monitor samples, vars and maps trimmed
to a few) and hand-built ones; several run directories (the shards of one run) as one."""

import json
import shutil
from pathlib import Path

import pytest

from ktstr.cli.main import main
from ktstr.runner.sidecar import SCHEMA, write_json_atomic

DATA = Path(__file__).parent / "data"


@pytest.fixture
def run_dir(tmp_path):
    shutil.copy(DATA / "snapshots_qmap_sidecar.json", tmp_path / "a_two_snapshots.json")
    (tmp_path / "notes.json").write_text(json.dumps({"not": "a sidecar"}))
    write_json_atomic(tmp_path / "b_failed.json", {
        "schema": SCHEMA, "test_id": "t.py::tuned", "outcome": "failed", "topology": "1n1l2c1t",
        "scheduler": "scx_qmap", "accel": "tcg", "wall_s": 9.0,
        "error": "worker starved", "report": "  cg0: starved",
        "scheduler_vars": {"requested": {"slice_ns": 1000}, "read_back": {"slice_ns": 1000}},
        "snapshots": {"on_error": {
            "name": "on_error", "frozen_ms": 12.0, "hits": 3, "missing": [],
            "rq": {"0": {"nr_running": 1, "clock_ns": 5, "scx_nr_running": 1,
                         "local_dsq_depth": 0, "curr_pid": 9, "curr_comm": "w"}},
            "scx": {"attached": True, "ops_name": "qmap", "enable_state": "SCX_ENABLED",
                    "events": {}},
            "vars": {"nr_enqueued": 40, "stats": {"a": 1}},
            "maps": {"qmap_arr": {"type": "array", "max_entries": 8, "truncated": False,
                                  "entries": [{"key": i, "value": {"pid": i}}
                                              for i in range(5)]}}}}})
    return tmp_path


def test_report_prints_each_test_with_its_snapshots(run_dir, capsys):
    assert main(["report", str(run_dir), "--entries", "2"]) == 0
    out = capsys.readouterr().out
    real, hand = out.split("FAIL t.py::tuned", 1)
    assert real.startswith("PASS tests.vm.capture_bodies::two_snapshots_under_qmap [passed, "
                           "topo=1n1l2c1t sched=scx_qmap accel=tcg")
    assert "--- stats ---" in real and "--- snapshots ---" in real
    for name in ("a", "b"):
        assert f"snapshot '{name}': " in real
    assert real.count("    cpu0: nr_running=") == 2 and real.count("    cpu1: ") == 2
    assert "scx: SCX_ENABLED, ops qmap" in real
    # qmap's arena counters member by member; the host wrote nr_dispatched before the body
    assert real.count("    qa.nr_enqueued = ") == 2 and "    slice_ns = 20000000" in real
    assert "    qa.nr_dispatched = 10000000000" in real
    assert "(2 more vars not shown: compiler constants and format strings)" in real
    assert "    map monitor_timer (array): 1 entries of max 1\n      [0] = {'timer': " in real
    assert "    map scx_qmap.bss (array): 1 entries of max 1\n    map task_ctx_stor" in real
    assert "scheduler_vars: requested {'qa.nr_dispatched': 1000000000000}, read back" in real
    assert "  worker starved" in hand
    assert "scheduler_vars: requested {'slice_ns': 1000}, read back {'slice_ns': 1000}" in hand
    assert "snapshot 'on_error': 12.0 ms frozen, hits 3, 1 cpus, qmap, 1 maps, 2 vars" in hand
    assert "    nr_enqueued = 40" in hand and "    stats.a = 1" in hand
    assert "    map qmap_arr (array): 5 entries of max 8" in hand
    assert "      [1] = {'pid': 1}" in hand and "[2] =" not in hand and "... 3 more" in hand
    assert out.rstrip().endswith("2 tests, 1 failed")


def test_report_on_a_directory_without_sidecars(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no ktstr sidecars in" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_report_over_several_run_directories_as_one(run_dir, tmp_path, capsys):
    shard2 = tmp_path / "shard-2"
    write_json_atomic(shard2 / "t.py_quick.json", {
        "schema": SCHEMA, "test_id": "t.py::quick", "outcome": "passed",
        "topology": "1n2l2c1t", "scheduler": "eevdf", "accel": "tcg", "wall_s": 3.0})
    assert main(["report", str(run_dir), str(shard2)]) == 0
    out = capsys.readouterr().out
    first, second = out.split(f"=== {shard2}: 1 tests ===")
    assert first.startswith(f"=== {run_dir}: 2 tests ===\n\nPASS tests.vm.capture_bodies::")
    assert "FAIL t.py::tuned" in first and "t.py::quick" not in first
    assert second.startswith("\n\nPASS t.py::quick [passed, topo=1n2l2c1t sched=eevdf")
    assert out.rstrip().endswith("3 tests, 1 failed from 2 run directories")
    assert "more than once" not in out


def test_report_names_a_test_found_in_two_directories(run_dir, tmp_path, capsys):
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(run_dir / "b_failed.json", again / "b_failed.json")
    assert main(["report", str(run_dir), str(again)]) == 0
    out = capsys.readouterr().out
    assert "3 tests, 2 failed from 2 run directories\ntest ids reported more than once:\n" \
        f"  t.py::tuned is in 2 directories: {run_dir}, {again}" in out


def test_report_refuses_a_directory_without_sidecars_among_several(run_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(run_dir), str(empty)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "", "nothing is reported before every directory is read"
    assert f"no ktstr sidecars in {empty}" in captured.err
