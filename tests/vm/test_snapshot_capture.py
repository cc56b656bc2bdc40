"""Op.snapshot / ctx.snapshots against a real guest (issue 8, the capture plumbing).

(test_snapshots.py is the VM save/restore of ktstr.vm.snapshot, another thing.)
"""

from ktstr.monitor.schedvars import SchedulerVars
from ktstr.runner.sidecar import read_sidecar
from tests.vm import capture_bodies


def _captures_in_sidecar(r):
    doc = read_sidecar(__import__("pathlib").Path(r.sidecar))
    assert sorted(doc["snapshots"]) == ["a", "b"], doc["snapshots"].keys()
    for name, cap in doc["snapshots"].items():
        assert cap["name"] == name and cap["hits"] == 1 and cap["frozen_ms"] > 0
        assert cap["rq"], cap
    return doc["snapshots"]


def test_two_snapshots_under_qmap(run_vm):
    r = run_vm(capture_bodies, "two_snapshots_under_qmap")
    assert r.passed, (r.outcome, r.error, r.report)
    caps = _captures_in_sidecar(r)
    assert caps["a"]["scx"]["ops_name"] == "qmap"
    assert caps["b"]["taken_at"] > caps["a"]["taken_at"]
    assert caps["b"]["vars"]["qa"]["nr_enqueued"] > caps["a"]["vars"]["qa"]["nr_enqueued"]
    big = capture_bodies.BIG
    assert r.scheduler_vars == SchedulerVars(requested={"qa.nr_dispatched": big},
                                             read_back={"qa.nr_dispatched": big}), \
        r.scheduler_vars


def test_snapshots_without_a_scheduler_or_monitor(run_vm):
    # No monitor: the capture opens the guest kernel itself.
    r = run_vm(capture_bodies, "snapshots_under_eevdf", monitor=False)
    assert r.passed, (r.outcome, r.error, r.report)
    assert r.monitor is not None and not r.monitor.samples, r.monitor
    caps = _captures_in_sidecar(r)
    assert any("no sched_ext scheduler" in m for m in caps["a"]["missing"])


def test_a_scheduler_var_the_scheduler_lacks_stops_the_run_before_the_body(run_vm):
    r = run_vm(capture_bodies, "unknown_scheduler_var")
    assert r.outcome == "error", (r.outcome, r.error)
    assert r.error.startswith("cannot write scheduler_vars: "), r.error
    assert "no global 'no_such_var'; it has: " in r.error and "slice_ns" in r.error, r.error
    assert r.scheduler_vars is not None
    assert r.scheduler_vars.requested == {"no_such_var": 1}
    assert "no_such_var" in r.scheduler_vars.error
