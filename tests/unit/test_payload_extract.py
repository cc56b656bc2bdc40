"""Metrics from payload output: real stress-ng YAML and fio JSON captured on this host."""

from __future__ import annotations

import json
from pathlib import Path

from ktstr.payloads import OutputFormat
from ktstr.payloads.extract import extract, find_json, numeric_leaves, parse_yaml

DATA = Path(__file__).parent / "data" / "payload"


def test_stress_ng_yaml_two_stressors_become_metrics_by_index() -> None:
    # stress-ng 0.15.06: --cpu 1 --vm 1 --vm-bytes 16M --timeout 1 -q --metrics-brief --yaml
    doc = parse_yaml((DATA / "stress_ng_cpu_vm.yaml").read_text())
    assert doc["metrics"][0]["stressor"] == "cpu" and doc["metrics"][1]["stressor"] == "vm"
    m = numeric_leaves(doc)
    assert m["metrics.0.bogo-ops"] == 190 and m["metrics.1.bogo-ops"] == 4736
    assert m["metrics.0.bogo-ops-per-second-real-time"] == 186.343333
    assert m["metrics.1.max-rss"] == 18580
    assert m["system-info.cpus"] == 2 and m["system-info.pagesize"] == 4096
    # Strings are not metrics: names, the quoted kernel version, the date with colons.
    assert "metrics.0.stressor" not in m and "system-info.version" not in m
    assert doc["system-info"]["version"] == "#1 SMP PREEMPT_DYNAMIC @0"
    assert doc["system-info"]["date-yyyy-mm-dd"] == "2026:11:23"


def test_stress_ng_yaml_through_extract_uses_stdout() -> None:
    text = (DATA / "stress_ng_cpu2.yaml").read_text()
    metrics, stream = extract(OutputFormat.YAML, text, "stress-ng: info: [1] dispatching hogs")
    assert stream == "stdout" and metrics["metrics.0.bogo-ops"] == 391
    assert metrics["metrics.0.wall-clock-time"] == 1.003761


def test_fio_json_read_write_iops_bw_and_percentiles() -> None:
    text = (DATA / "fio_randrw.json").read_text()
    raw = json.loads(text)["jobs"][0]
    metrics, stream = extract(OutputFormat.JSON, text, "")
    assert stream == "stdout"
    assert metrics["jobs.0.read.iops"] == raw["read"]["iops"] > 0
    assert metrics["jobs.0.write.bw"] == raw["write"]["bw"]
    p99 = raw["read"]["clat_ns"]["percentile"]["99.000000"]
    assert metrics["jobs.0.read.clat_ns.percentile.99.000000"] == p99
    assert "jobs.0.jobname" not in metrics and "fio version" not in metrics


def test_json_after_a_banner_and_before_trailing_text_is_found() -> None:
    text = (DATA / "fio_randrw.json").read_text()
    noisy = "fio: this platform does not support process shared mutexes {oops\n" + text + \
        "\nRun status group 0 (all jobs): {"
    assert find_json(noisy) == json.loads(text)
    assert find_json('x {"a": "}{", "b": [1, {"c": 2.5}]} {"second": 1}') == \
        {"a": "}{", "b": [1, {"c": 2.5}]}
    assert find_json("no document here") is None
    assert numeric_leaves(find_json('{"ok": true, "n": null, "v": 3, "s": "7"}')) == {"v": 3.0}


def test_stderr_is_read_when_stdout_has_no_metrics() -> None:
    assert extract(OutputFormat.JSON, "banner only", '{"lat": {"p99": 12}}') == \
        ({"lat.p99": 12.0}, "stderr")
    assert extract(OutputFormat.JSON, "", "") == ({}, "")
    assert extract(OutputFormat.EXIT_CODE, '{"a": 1}', '{"b": 2}') == ({}, "")


def test_yaml_subset_sequences_scalars_and_document_markers() -> None:
    doc = parse_yaml("junk before\n---\ntop:\n  - 1\n  - 2.5\n  -\n    x: 'it''s'\n"
                     "list:\n- a: 1\n  b: -2e3\nempty:\n...\nafter: 9\n")
    assert doc == {"top": [1, 2.5, {"x": "it's"}], "list": [{"a": 1, "b": -2000.0}],
                   "empty": None}
    assert numeric_leaves(doc) == {"top.0": 1.0, "top.1": 2.5, "list.0.a": 1.0,
                                   "list.0.b": -2000.0}
    assert parse_yaml("") is None
