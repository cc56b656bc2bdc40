"""Timer, IRQ, signal and RT work types hit their kernel paths, as the guest kernel counts.

The bodies (work_timers_bodies.py) report figures as `fig:` detail lines; the
assertions are on presence and direction of the effects, loose enough for TCG
emulation on a loaded host.
"""

from __future__ import annotations

from ktstr.runner.vmrun import RunResult
from tests.vm import work_timers_bodies as bodies


def _figs(r: RunResult) -> dict[str, str]:
    assert r.passed, (r.outcome, r.error, r.report, r.console_tail)
    assert r.result is not None
    figs = dict(line[4:].split("=", 1) for line in r.result["details"]
                if line.startswith("fig:"))
    print("\n".join(f"{k}={v}" for k, v in figs.items()))  # the figures, with -s
    return figs


def _f(figs: dict[str, str], key: str) -> float:
    return float(figs[key])


def _workers(figs: dict[str, str]) -> list[str]:
    return sorted({k.split(".", 1)[0] for k in figs if k.startswith("w")})


def test_timer_latency_samples_each_hrtimer_wake_at_the_intervals_rate(run_vm):
    figs = _figs(run_vm(bodies, "timer_latency"))
    wakes, overruns = _f(figs, "w0.wakes"), _f(figs, "w0.overruns")
    assert wakes > 0 and _f(figs, "w0.lat_count") == wakes
    periods = _f(figs, "w0.wall_ms")  # 1 ms interval: one period per ms of wall time
    # Every period is either a wake or an overrun skipped after a late wake.
    assert 0.8 * periods <= wakes + overruns <= periods + 2, figs
    # clock_nanosleep blocked: the kernel counts a voluntary switch per sleep (not all:
    # under a slow emulator a deadline can pass before the call, which then returns).
    assert _f(figs, "w0.vcsw") >= 0.5 * wakes, figs


def test_irq_wake_receivers_are_woken_by_net_rx_softirqs(run_vm):
    figs = _figs(run_vm(bodies, "irq_wake"))
    received = 0.0
    for w in _workers(figs):
        got = _f(figs, f"{w}.datagrams_received")
        assert got > 0 and _f(figs, f"{w}.lat_count") == got, figs
        assert _f(figs, f"{w}.vcsw") >= 0.5 * got, figs  # blocked in recvfrom for each
        received += got
    # Every datagram on lo goes through the backlog: one NET_RX softirq run (or more).
    assert _f(figs, "net_rx_delta") >= 0.5 * received, figs


def test_net_traffic_frames_come_back_through_net_rx_and_the_missing_nic_is_noted(run_vm):
    figs = _figs(run_vm(bodies, "net_traffic"))
    received = 0.0
    for w in _workers(figs):
        got = _f(figs, f"{w}.frames_received")
        assert got > 0 and _f(figs, f"{w}.lat_count") == got, figs
        assert "NET_RX softirq" in figs[f"{w}.notes"], figs
        received += got
    assert _f(figs, "net_rx_delta") >= 0.5 * received, figs


def test_signal_storm_signals_are_delivered_to_the_partner(run_vm):
    figs = _figs(run_vm(bodies, "signal_storm"))
    a, b = _workers(figs)
    for me, other in ((a, b), (b, a)):
        got = _f(figs, f"{me}.signals_received")
        assert got > 0, figs
        assert got <= _f(figs, f"{other}.signals_sent"), figs  # pending signals coalesce
        assert _f(figs, f"{me}.signals_failed") == 0, figs


def test_preempt_storm_fifo_worker_preempts_the_cfs_spinner(run_vm):
    figs = _figs(run_vm(bodies, "preempt_storm"))
    ws = _workers(figs)
    (fifo,) = [w for w in ws if _f(figs, f"{w}.preemptor") == 1]
    (cfs,) = [w for w in ws if w != fifo]
    # The kernel's view, from /proc/<pid>/sched read by the body mid-run and by each task.
    policies = figs["proc_policies"].split(",")
    assert policies[ws.index(fifo)] == "1" and policies[ws.index(cfs)] == "0", figs
    assert _f(figs, f"{fifo}.sched_policy") == 1, figs
    wakes = _f(figs, f"{fifo}.wakes")
    assert wakes > 100, figs
    # Alone on CPU 1 with the FIFO worker, the spinner is switched out at its wakes.
    assert _f(figs, f"{cfs}.ivcsw") >= 0.3 * wakes, figs


def test_rt_starvation_starves_the_cfs_worker_down_to_the_rt_throttle(run_vm):
    figs = _figs(run_vm(bodies, "rt_starvation"))
    ws = _workers(figs)
    (hog,) = [w for w in ws if _f(figs, f"{w}.rt_hog") == 1]
    (cfs,) = [w for w in ws if w != hog]
    policies = figs["proc_policies"].split(",")
    assert policies[ws.index(hog)] == "1" and policies[ws.index(cfs)] == "0", figs
    runtime, period = _f(figs, f"{hog}.rt_runtime_us"), _f(figs, f"{hog}.rt_period_us")
    assert period > 0, figs
    hog_cpu, cfs_cpu = _f(figs, f"{hog}.cpu_ms"), _f(figs, f"{cfs}.cpu_ms")
    wall = _f(figs, f"{cfs}.wall_ms")
    assert hog_cpu > 2 * cfs_cpu, figs
    # Runnable all along, the CFS worker mostly waited: the FIFO hog held the CPU.
    assert _f(figs, f"{cfs}.run_delay_ms") >= 0.5 * wall, figs
    if 0 <= runtime < period or _f(figs, f"{hog}.fair_server"):
        # Something bounds the starvation: the CFS worker got some CPU, not none.
        assert cfs_cpu > 0, figs
    else:
        assert "RT throttle leaves CFS nothing" in figs[f"{hog}.notes"], figs
