"""MetricCheck verdicts and detail lines, Payload validation, results through the report."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from ktstr import (
    AssertResult,
    MetricCheck,
    MetricHint,
    OutputFormat,
    Payload,
    PayloadResult,
    ktstr_test,
)
from ktstr.checks.payload_checks import evaluate
from ktstr.errors import ConfigError
from ktstr.payloads import FIO, STRESS_NG

M = {"jobs.0.read.iops": 5180.74, "zero": 0.0}


def test_min_max_range_exists_pass_within_bounds_inclusive() -> None:
    checks = [MetricCheck.min("jobs.0.read.iops", 5180.74), MetricCheck.max("zero", 0),
              MetricCheck.range("zero", 0, 1), MetricCheck.exists("zero"),
              MetricCheck.exit_code_eq(0)]
    assert evaluate("fio", checks, 0, None, M) == []


def test_each_failing_check_names_payload_metric_value_and_bound() -> None:
    checks = [MetricCheck.min("jobs.0.read.iops", 10000), MetricCheck.max("jobs.0.read.iops", 5),
              MetricCheck.range("zero", 0.5, 2), MetricCheck.exists("missing"),
              MetricCheck.min("gone", 1)]
    assert evaluate("fio", checks, 0, None, M) == [
        "payload fio: metric 'jobs.0.read.iops' = 5180.74 below minimum 10000",
        "payload fio: metric 'jobs.0.read.iops' = 5180.74 exceeds maximum 5",
        "payload fio: metric 'zero' = 0 outside [0.5, 2]",
        "payload fio: metric 'missing' not found in payload output",
        "payload fio: metric 'gone' not found in payload output",
    ]


def test_exit_code_mismatch_comes_first_and_stops_the_metric_checks() -> None:
    checks = [MetricCheck.min("gone", 1), MetricCheck.exit_code_eq(0)]
    assert evaluate("false", checks, 1, None, {}) == [
        "payload false: exited with code 1, expected 0"]
    assert evaluate("fio", checks, 2, None, {}, "fio: bad option --frob\n") == [
        "payload fio: exited with code 2, expected 0; stderr: fio: bad option --frob"]
    assert evaluate("sng", [MetricCheck.exit_code_eq(0)], None, 9, {}) == [
        "payload sng: killed by SIGKILL, expected 0"]
    assert evaluate("x", [MetricCheck.exit_code_eq(3)], 3, None, {}) == []


def test_metric_check_constructors_reject_bad_values() -> None:
    with pytest.raises(ConfigError, match="lo > hi"):
        MetricCheck.range("a", 2, 1)
    with pytest.raises(ConfigError, match="metric name '' is empty"):
        MetricCheck.min("", 1)
    with pytest.raises(ConfigError, match="not a finite number"):
        MetricCheck.max("a", math.nan)
    with pytest.raises(ConfigError, match="not a finite number"):
        MetricCheck.min("a", True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be an integer"):
        MetricCheck.exit_code_eq(0.0)  # type: ignore[arg-type]


def test_payload_binary_defaults_and_validation() -> None:
    p = Payload.binary("t", "true")
    assert (p.program, p.default_args, p.output, p.checks) == ("true", (), OutputFormat.EXIT_CODE,
                                                               ())
    assert OutputFormat.EXIT_CODE | OutputFormat.JSON == OutputFormat.JSON
    assert Path(p.locate()).is_absolute() and os.access(p.locate(), os.X_OK)
    with pytest.raises(ConfigError, match="name '' is empty"):
        Payload.binary("", "true")
    with pytest.raises(ConfigError, match="binary '' is empty"):
        Payload.binary("x", "")
    with pytest.raises(ConfigError, match="asks for two parsers"):
        Payload.binary("x", "true", output=OutputFormat.JSON | OutputFormat.YAML)
    with pytest.raises(ConfigError, match="is a single string"):
        Payload.binary("x", "true", default_args="--cpu 1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="is not a MetricCheck"):
        Payload.binary("x", "true", checks=["min"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="is empty"):
        MetricHint("")


def test_a_binary_that_cannot_be_found_names_the_package_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("ktstr.payloads.defs.SYSTEM_PATH", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"payload stress-ng: binary 'stress-ng' not found .*"
                       r"hint: apt-get install stress-ng \(scripts/setup-host.sh"):
        STRESS_NG.locate()
    with pytest.raises(ConfigError, match="hint: install the package that provides it"):
        Payload.binary("mine", "my-bench").locate()
    with pytest.raises(ConfigError, match="is a relative path"):
        Payload.binary("rel", "bin/x").locate()
    with pytest.raises(ConfigError, match="does not exist or is not executable"):
        Payload.binary("abs", str(tmp_path / "nope")).locate()
    with pytest.raises(ConfigError, match="include file /nonexistent/cfg does not exist"):
        Payload.binary("inc", "/bin/true", include_files=["/nonexistent/cfg"]).check_runnable()


def test_shipped_payloads_are_found_on_this_host() -> None:
    # scripts/setup-host.sh installs both; the VM tests need them too.
    assert Path(STRESS_NG.check_runnable()).name == "stress-ng"
    assert Path(FIO.check_runnable()).name == "fio"
    assert STRESS_NG.output is OutputFormat.YAML and FIO.output is OutputFormat.JSON


def test_ktstr_test_payload_slots_are_checked_at_decoration() -> None:
    body = lambda ctx: None  # noqa: E731
    t = ktstr_test(payload=FIO, workloads=[STRESS_NG])(body)
    assert t.payloads() == (FIO, STRESS_NG)
    with pytest.raises(ConfigError, match="payload='fio' is not a Payload"):
        ktstr_test(payload="fio")(body)
    with pytest.raises(ConfigError, match="workloads: 3 is not a Payload"):
        ktstr_test(workloads=[3])(body)
    with pytest.raises(ConfigError, match="payload 'fio' is declared twice"):
        ktstr_test(payload=FIO, workloads=[FIO])(body)


def _run(**kw: object) -> PayloadResult:
    base: dict[str, object] = dict(name="fio", pid=7, exit_code=0, wall_s=1.25,
                                   metrics={"jobs.0.read.iops": 10.0, "other": 1.0},
                                   shown=["jobs.0.read.iops"], units={"jobs.0.read.iops": "iops"})
    base.update(kw)
    return PayloadResult(**base)  # type: ignore[arg-type]


def test_payload_result_judged_or_recorded_and_rendered() -> None:
    bad = _run(details=["payload fio: metric 'x' not found in payload output"])
    assert not bad.result.passed and bad.result.details == bad.details
    recorded = _run(details=list(bad.details), judged=False)
    assert recorded.result.passed and recorded.result.payloads == [recorded]
    text = str(bad.result)
    assert "--- payloads ---" in text
    assert "fio pid 7: exit 0 after 1.2s, 2 metrics" in text
    assert "  jobs.0.read.iops=10 iops" in text and "other=" not in text
    killed = _run(exit_code=None, signal=9, killed=True, cgroup="sng", judged=False)
    assert killed.headline() == ("fio pid 7 in cg sng: killed by SIGKILL after 1.2s, 2 metrics "
                                 "(recorded, not judged)")


def test_assert_result_carries_payloads_through_merge_and_json() -> None:
    a, b = AssertResult.ok(), _run().result
    a.merge(b)
    a.merge(b)  # the same run is not listed twice
    assert a.payloads == b.payloads
    back = AssertResult.from_dict(a.to_dict())
    assert back.payloads == a.payloads and back.payloads[0].metrics["other"] == 1.0
