"""Scheduler ops in a real guest: detach mid-run (the A/B use), attach, restart, replace."""

from tests.vm import sched_switch_bodies


def test_detach_mid_run_continues_under_eevdf(run_vm):
    r = run_vm(sched_switch_bodies, "ab_detach_mid_run")
    assert r.passed, (r.error, r.traceback, r.report)
    assert [(s.name, s.ops, s.end) for s in r.scheduler_runs] == [
        ("scx_simple", "simple", "clean")]


def test_attach_restart_replace_and_detach_from_eevdf(run_vm):
    r = run_vm(sched_switch_bodies, "attach_restart_replace_detach")
    assert r.passed, (r.error, r.traceback, r.report)
    assert [(s.name, s.ops, s.end) for s in r.scheduler_runs] == [
        ("scx_simple", "simple", "clean"), ("scx_simple", "simple", "clean"),
        ("scx_central", "central", "clean")]


def test_an_unstaged_scheduler_is_refused_before_any_step(run_vm):
    r = run_vm(sched_switch_bodies, "attach_unstaged")
    assert r.outcome == "failed", (r.outcome, r.error)
    assert "scx_central is not staged" in r.error and "staged_schedulers" in r.error, r.error
    assert r.body_s < 10, r.body_s
