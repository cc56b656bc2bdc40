"""Real sched_ext schedulers in the guest: attach, pass a fair scenario, and fail loudly."""

import time

import pytest

from ktstr.errors import ConfigError
from tests.vm import sched_bodies


@pytest.mark.parametrize("name, ops", [("fair_under_simple", "simple"),
                                       ("fair_under_central", "central"),
                                       ("fair_under_flatcg", "flatcg"),
                                       ("fair_under_qmap", "qmap")])
def test_example_scheduler_attaches_and_a_fair_scenario_passes(run_vm, name, ops):
    r = run_vm(sched_bodies, name)
    assert r.passed, (r.error, r.report, r.scheduler_run)
    run = r.scheduler_run
    assert run is not None and run.ops == ops, run
    assert run.end == "clean", run
    assert run.reason == "unregistered from user space", run
    assert run.pid > 1 and run.attach_s > 0


def test_a_missing_scheduler_fails_before_any_boot(run_vm, tmp_path):
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"scx_does_not_exist.*not found"):
        run_vm(sched_bodies, "missing_scheduler")
    assert time.monotonic() - started < 10
    assert not list(tmp_path.rglob("console.log")), "a VM was started"


def test_a_scheduler_that_dies_mid_run_fails_the_test_at_once(run_vm):
    r = run_vm(sched_bodies, "scheduler_killed_mid_run")
    assert r.outcome == "failed", (r.outcome, r.error)
    assert "scheduler scx_simple" in r.error and "crash" in r.error, r.error
    assert r.body_s < 60, f"the body ran {r.body_s:.0f}s: the dead scheduler did not stop it"
    assert r.scheduler_run is not None and r.scheduler_run.exit_code == -9


def test_sysctls_and_kargs_reach_the_guest(run_vm):
    r = run_vm(sched_bodies, "sysctls_and_kargs_applied")
    assert r.passed, (r.error, r.traceback)


def test_qmap_forced_error_fails_as_an_error_exit_with_its_message(run_vm):
    r = run_vm(sched_bodies, "qmap_forced_error")
    assert r.outcome == "failed", (r.outcome, r.error)
    run = r.scheduler_run
    assert run is not None and run.end == "error exit", run
    assert run.reason == "scx_bpf_error", run
    assert "test triggering error" in run.message + run.output_tail, run
    assert r.body_s < 30, f"body ran {r.body_s:.0f}s of its 30: the error did not stop it"


def test_qmap_stalled_tasks_fail_as_a_watchdog_stall(run_vm):
    r = run_vm(sched_bodies, "qmap_stalled_tasks")
    assert r.outcome == "failed", (r.outcome, r.error)
    run = r.scheduler_run
    assert run is not None and run.end == "watchdog stall", run
    assert run.reason == "runnable task stall", run
    assert r.body_s < 30, f"body ran {r.body_s:.0f}s of its 30: the stall did not stop it"
