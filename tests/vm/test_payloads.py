"""Payloads in a guest: stress-ng in a cpuset cgroup, fio's JSON, kill, a failing check."""

from pathlib import Path

from ktstr.runner.sidecar import read_sidecar
from tests.vm import payload_bodies


def _payloads(r) -> dict[str, dict]:
    return {p["name"]: p for p in (r.result or {}).get("payloads", [])}


def test_stress_ng_runs_in_its_cpuset_cgroup_and_min_checks_judge_bogo_ops(run_vm):
    r = run_vm(payload_bodies, "stress_ng_in_a_cpuset_cgroup")
    assert r.outcome == "passed", r.error + r.traceback + r.report
    runs = _payloads(r)
    assert set(runs) == {"stress-ng", "stress-ng-1e15"}, runs.keys()
    sidecar = {p["name"]: p for p in read_sidecar(Path(r.sidecar))["result"]["payloads"]}
    assert sidecar["stress-ng"]["metrics"]["metrics.0.bogo-ops"] > 0
    assert "--- payloads ---" in r.report and "metrics.0.bogo-ops=" in r.report, r.report
    print({n: (p["metrics"].get("metrics.0.bogo-ops"), p["wall_s"]) for n, p in runs.items()})


def test_fio_metrics_and_kill_payload(run_vm):
    r = run_vm(payload_bodies, "fio_metrics_and_a_killed_payload")
    assert r.outcome == "passed", r.error + r.traceback + r.report
    runs = _payloads(r)
    fio = runs["fio"]["metrics"]
    assert fio["jobs.0.read.iops"] > 0 and "jobs.0.write.clat_ns.percentile.99.000000" in fio
    assert runs["stress-ng-long"]["signal"] == 9
    print({k: fio[k] for k in ("jobs.0.read.iops", "jobs.0.write.iops")},
          runs["stress-ng-long"]["wall_s"])


def test_primary_payload_failing_exit_code_fails_the_test(run_vm):
    r = run_vm(payload_bodies, "primary_payload_with_a_failing_exit_code")
    assert r.outcome == "failed", r.error + r.report
    assert "payload false: exited with code 1, expected 0" in r.report, r.report
    assert _payloads(r)["false"]["exit_code"] == 1
