"""Group wake types in a guest: fan-out, broadcast, exclusive epoll and chain wakes are
real sleeps and wakeups the kernel counts, and the p99 wake-latency gate bites."""

from tests.vm import work_fanout_bodies


def _figures(r) -> str:
    out = []
    for w in (r.result or {}).get("reports", []):
        lat = w["wake_latency_us"]
        out.append(f"{w['work_type']} role={w['metrics'].get('group_role')} "
                   f"it={w['iterations']} vcsw={w['voluntary_csw']} n={lat['count']} "
                   f"p50={lat['p50']:.0f} p99={lat['p99']:.0f}us")
    return "\n".join(out)


def test_fan_out_types_wake_all_receivers_each_round(run_vm):
    r = run_vm(work_fanout_bodies, "fan_out_types")
    print(_figures(r))
    assert r.outcome == "passed", r.error + r.traceback + r.report


def test_thundering_herd_and_epoll_storm(run_vm):
    r = run_vm(work_fanout_bodies, "herd_and_epoll")
    print(_figures(r))
    assert r.outcome == "passed", r.error + r.traceback + r.report


def test_wake_chains_pipe_and_futex(run_vm):
    r = run_vm(work_fanout_bodies, "wake_chains")
    print(_figures(r))
    assert r.outcome == "passed", r.error + r.traceback + r.report


def test_p99_wake_latency_gate_fails_an_absurd_threshold(run_vm):
    r = run_vm(work_fanout_bodies, "fan_out_p99_gate_fails")
    print(_figures(r))
    assert r.outcome == "failed", r.report
    assert "p99 wake latency" in r.report and "exceeds limit 0.0us" in r.report, r.report
