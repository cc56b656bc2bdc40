import json

import pytest

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
