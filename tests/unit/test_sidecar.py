import json
from dataclasses import replace
from pathlib import Path

import pytest

from ktstr.monitor.report import WatchdogResult
from ktstr.monitor.schedvars import SchedulerVars
from ktstr.protocol import Outcome, SchedEnd
from ktstr.runner.result import RunResult
from ktstr.runner.sidecar import SCHEMA, read_sidecar, safe_name, write_json_atomic


def test_safe_name_keeps_it_a_single_file_name():
    assert safe_name("examples/test_x.py::mixed[1n2l2c1t]") == "examples_test_x.py_mixed_1n2l2c1t"


def test_write_is_atomic_and_readable(tmp_path):
    path = tmp_path / "runs" / "a.json"
    write_json_atomic(path, {"schema": SCHEMA, "outcome": "passed"})
    assert read_sidecar(path)["outcome"] == "passed"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_failed_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "a.json"
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object.__new__(type("X", (), {"__str__": None}))})
    assert list(tmp_path.iterdir()) == []


def test_wrong_schema_is_refused(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"schema": 99}))
    with pytest.raises(ValueError, match="schema 99"):
        read_sidecar(path)


DATA = Path(__file__).parent / "data" / "sidecar"


@pytest.mark.parametrize("path", [DATA / "sidecar_main_failed.json",
                                  DATA / "sidecar_main_crashed.json",
                                  DATA.parents[2] / "cli" / "data" /
                                  "snapshots_qmap_sidecar.json"])  # from a real run
def test_a_sidecar_written_before_typed_results_reads_back_to_the_same_json(path):
    """Written by the untyped RunResult (dicts for scheduler_run, monitor, scheduler_vars):
    read into the typed one and written again, it is the same document."""
    doc = read_sidecar(path)
    res = RunResult.from_dict(doc)
    again = json.loads(json.dumps({"schema": SCHEMA, **res.to_dict()}, default=str))
    assert again == doc


def test_a_sidecar_reads_into_typed_fields():
    res = RunResult.from_dict(read_sidecar(DATA / "sidecar_main_failed.json"))
    assert res.outcome is Outcome.FAILED and not res.passed
    assert res.scheduler_run is not None and res.scheduler_run.end is SchedEnd.ERROR
    assert [r.name for r in res.scheduler_runs] == ["scx_simple", "scx_qmap"]
    assert res.monitor is not None and res.monitor.samples[2].cpus[0].vcpu_cpu_ns == 10_000
    assert res.monitor.watchdog == WatchdogResult(9.0, 9.0, applied=1)
    assert res.scheduler_vars == SchedulerVars({"slice_ns": 1000}, error="no such var")
    crashed = RunResult.from_dict(read_sidecar(DATA / "sidecar_main_crashed.json"))
    assert crashed.outcome is Outcome.CRASHED and crashed.scheduler_run is None
    assert crashed.monitor is not None and not crashed.monitor.started
    assert crashed.scheduler_vars is None


def test_the_cpu_wait_is_in_the_sidecar_only_when_there_was_one():
    res = RunResult.from_dict(read_sidecar(DATA / "sidecar_main_failed.json"))
    assert res.cpu_wait_s == 0.0 and "cpu_wait_s" not in res.to_dict()
    waited = replace(res, cpu_wait_s=2.5)
    assert waited.to_dict()["cpu_wait_s"] == 2.5
    assert RunResult.from_dict(waited.to_dict()).cpu_wait_s == 2.5
