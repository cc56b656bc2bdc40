"""Test bodies for test_work_timers.py: timer, IRQ, signal and RT work types in a guest.

Not a test module (no test_ prefix). Each body runs one work type and adds what
the kernel's own counters showed as `fig:key=value` detail lines to its result;
the host side (test_work_timers.py) judges them. The I/O-like types opt out of
the fairness spread (one worker of a pair often finds its message already
queued and never sleeps): what they prove is the kernel path, not fairness.
"""

from __future__ import annotations

import time

from ktstr import CgroupDef, Ctx, WorkloadConfig, WorkloadHandle, execute_defs, ktstr_test
from ktstr.checks import AssertResult
from ktstr.system import proc
from ktstr.work.report import WorkerReport
from ktstr.work.rt import PreemptStorm, RtStarvation
from ktstr.work.timers import IrqWake, NetTraffic, SignalStorm, TimerLatency


def _net_rx() -> int:
    """NET_RX softirqs run so far, summed over CPUs (/proc/softirqs)."""
    with open("/proc/softirqs") as f:
        for line in f:
            if line.strip().startswith("NET_RX:"):
                return sum(int(v) for v in line.split()[1:])
    raise AssertionError("no NET_RX line in /proc/softirqs")


def _policy(pid: int) -> int:
    """The `policy` field of /proc/<pid>/sched, read from outside the task."""
    policy = proc.task_sched(pid).get("policy")
    assert policy is not None, f"no policy in /proc/{pid}/sched"
    return int(policy)


def _figs(result: AssertResult, reports: list[WorkerReport], **extra: object) -> AssertResult:
    """`result` plus one `fig:` line per figure: per worker `w<i>.<name>`, then `extra`."""
    lines = []
    for i, r in enumerate(sorted(reports, key=lambda r: r.tid)):
        lat = r.wake_latency_us
        figures: dict[str, object] = {
            "work_units": r.work_units, "wall_ms": round(r.wall_time_ns / 1e6, 1),
            "cpu_ms": round(r.cpu_time_ns / 1e6, 1),
            "run_delay_ms": round(r.run_delay_ns / 1e6, 1),
            "vcsw": r.voluntary_csw, "ivcsw": r.involuntary_csw,
            "lat_count": lat.count, "lat_p50_us": lat.p50, "lat_p99_us": lat.p99,
            "lat_max_us": lat.max, "error": r.error or "-",
            "notes": " | ".join(r.notes) or "-",
        }
        figures.update({k: v for k, v in r.metrics.items()})
        lines += [f"fig:w{i}.{k}={v}" for k, v in figures.items()]
    lines += [f"fig:{k}={v}" for k, v in extra.items()]
    result.merge(AssertResult(details=lines))
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2)
def timer_latency(ctx: Ctx) -> AssertResult:
    result = execute_defs(ctx, [CgroupDef("t", workers=1, work=TimerLatency(1000))])
    return _figs(result, result.reports)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2, max_spread_pct=100.0)
def irq_wake(ctx: Ctx) -> AssertResult:
    before = _net_rx()
    result = execute_defs(ctx, [CgroupDef("irq", workers=2, work=IrqWake())])
    return _figs(result, result.reports, net_rx_delta=_net_rx() - before)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2, max_spread_pct=100.0)
def net_traffic(ctx: Ctx) -> AssertResult:
    before = _net_rx()
    result = execute_defs(ctx, [CgroupDef("net", workers=2, work=NetTraffic())])
    return _figs(result, result.reports, net_rx_delta=_net_rx() - before)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2, max_spread_pct=100.0)
def signal_storm(ctx: Ctx) -> AssertResult:
    result = execute_defs(ctx, [CgroupDef("sig", workers=2, work=SignalStorm())])
    return _figs(result, result.reports)


def _on_one_cpu(ctx: Ctx, work: PreemptStorm | RtStarvation) -> AssertResult:
    """Two workers sharing CPU 1 alone; the policies read from outside mid-run."""
    ctx.cgroups.create("rt")
    ctx.cgroups.set_cpuset("rt", frozenset({1}))
    cfg = WorkloadConfig(workers=2, work=work)
    with WorkloadHandle.spawn(cfg, cgroup_dir=ctx.cgroups.path("rt"), start=True) as h:
        time.sleep(ctx.duration)
        policies = {pid: _policy(pid) for pid in h.pids}
        reports = h.stop_and_collect()
    by_tid = sorted(reports, key=lambda r: r.tid)
    return _figs(AssertResult.ok(), reports,
                 proc_policies=",".join(str(policies[r.tid]) for r in by_tid))


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2)
def preempt_storm(ctx: Ctx) -> AssertResult:
    return _on_one_cpu(ctx, PreemptStorm())


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def rt_starvation(ctx: Ctx) -> AssertResult:
    return _on_one_cpu(ctx, RtStarvation())
