"""The host-side monitor against a real sched_ext scheduler (issue 7's "must show")."""

import re

from tests.vm import monitor_bodies


def test_eight_spinners_on_one_cpu_fail_with_the_imbalance_line(run_vm):
    r = run_vm(monitor_bodies, "eight_spinners_on_cpu0")
    assert r.outcome == "failed", (r.outcome, r.error, r.report)
    assert r.error.startswith("host-side monitor: imbalance ratio"), r.error
    m = re.search(r"imbalance ratio ([\d.]+) exceeded threshold 4\.0 for (\d+) consecutive "
                  r"samples \(ending at sample (\d+)\)", r.report)
    assert m and float(m[1]) >= 4.0 and int(m[2]) >= 5, r.report
    assert "--- monitor ---" in r.report
    assert r.monitor is not None and r.monitor.available and r.monitor.samples, r.monitor


def test_a_balanced_scenario_passes_with_a_sample_every_100ms(run_vm):
    r = run_vm(monitor_bodies, "balanced_under_simple")
    assert r.passed, (r.error, r.report)
    assert r.monitor is not None
    samples = r.monitor.samples
    assert len(samples) >= 0.8 * 5 / 0.1, len(samples)
    attached = [s for s in samples if s.attached]
    assert attached and {s.ops_name for s in attached} == {"simple"}
    # Every CPU's rq clock moved over the run, and the spinners were seen running.
    first, last = attached[0].cpus, attached[-1].cpus
    assert all(b.clock_ns > a.clock_ns for a, b in zip(first, last, strict=True))
    assert any(c.nr_running >= 1 for s in attached for c in s.cpus)
    assert all(c.vcpu_cpu_ns is not None for c in last), last
    # The watchdog override: written to scx_root->watchdog_timeout and read back.
    wd = r.monitor.watchdog
    assert wd is not None and wd.requested_s == 9.0 and wd.observed_s == 9.0, wd
    assert r.scheduler_run is not None
    assert "9 requested, 9 read back" in r.scheduler_run.watchdog, r.scheduler_run


def test_qmap_stall_waits_for_the_tests_watchdog_not_qmaps_own(run_vm):
    r = run_vm(monitor_bodies, "qmap_stall_under_a_12s_watchdog")
    assert r.outcome == "failed", (r.outcome, r.error)
    run = r.scheduler_run
    assert run is not None and run.end == "watchdog stall", run
    m = re.search(r"failed to run for ([\d.]+)s", run.message)
    assert m and 11.0 <= float(m[1]) < 20.0, run.message  # not scx_qmap's own 5 s
    assert r.body_s < 50, r.body_s
