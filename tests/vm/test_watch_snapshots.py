"""Op.watch_snapshot and the on_error capture through a whole ktstr run (issue 8).

The mechanism (gdbstub client, WatchSet) is proved on its own in test_watch.py; here
the test body arms a watch and makes the writes, and a scheduler's error exit arrives
with the state that led to it.
"""

from ktstr.runner.sidecar import read_sidecar
from tests.vm import watch_bodies


def test_a_watched_sysctl_write_is_captured_with_its_value(run_vm):
    r = run_vm(watch_bodies, "watch_a_sysctl")
    assert r.passed, (r.outcome, r.error, r.report)
    cap = r.snapshots[watch_bodies.SYMBOL]
    assert cap.hits == 2 and cap.watch is not None and cap.watch["kind"] == "watch", cap.watch
    assert cap.frozen_ms > 0 and cap.cpus()
    assert "on_error" not in r.snapshots


def test_a_scheduler_error_exit_arrives_with_its_on_error_capture(run_vm):
    r = run_vm(watch_bodies, "qmap_error_exit")
    assert r.outcome == "failed", (r.outcome, r.error)
    assert r.scheduler_vars is not None
    assert r.scheduler_vars.read_back == {"qa.test_error_cnt": watch_bodies.ERROR_AFTER}
    cap = r.snapshots.get("on_error")
    assert cap is not None and cap.watch is not None, (r.snapshots.keys(), r.report)
    assert cap.watch["symbol"] == "scx_sched.exit_kind"
    assert str(cap.watch["value"]).startswith("SCX_EXIT_ERROR"), cap.watch
    # Captured at the claim, before the scheduler's maps went: qmap's own state is there.
    assert cap.scx["ops_name"] == "qmap", cap.scx
    assert "qa" in cap.vars(), (cap.missing, cap.vars())
    assert cap.var("qa.nr_enqueued") > 0
    assert "--- on_error snapshot ---" in r.report and "snapshot 'on_error'" in r.report, \
        r.report
    doc = read_sidecar(__import__("pathlib").Path(r.sidecar))
    assert doc["snapshots"]["on_error"]["watch"]["value"] == cap.watch["value"]
