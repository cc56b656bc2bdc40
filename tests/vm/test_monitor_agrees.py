"""The host monitor's view of the runqueues agrees with the guest kernel's own (issue 7).

The guest reads debugfs `sched/debug` (the runqueues as the kernel prints them) every
250 ms on cpu0 while pinned spinners run (3 on cpu1, 1 on cpu2, none on cpu3); the host
monitor samples the same runqueues from guest RAM every 100 ms. The two series share
two clocks: `jiffies` (in every monitor sample and in the file's header) and each CPU's
`rq->clock` itself. The window compared is the guest's steady part: from its first to
its last reading that shows every spinner on its runqueue; monitor samples are taken in
it by jiffies, and each is paired with the guest reading nearest in jiffies.

Tolerances, and why:
- nr_running on the pinned CPUs (cpu1, cpu2): every paired sample within +-1 of the
  guest's reading (a kworker or a waking helper may be queued at one moment and not at
  the other), and the medians of both sides equal the spinners pinned there.
- nr_running on the free CPUs (cpu0, cpu3): the medians within 1 of each other, and at
  most 1. Not sample by sample: the harness's own tasks (the agent, the workers' parent,
  scx_simple's stats loop) run there in bursts shorter than the 250 ms between two guest
  readings, so one pair may see 3 tasks on one side and none on the other. The guest's
  reader runs on cpu0 while the kernel prints cpu0's line, so the guest's cpu0 count
  always holds it and the monitor mostly sees it asleep: it is taken out of the
  guest's count.
- The sum over all CPUs: the means over the window within 1.0 of each other, and no
  pair more than 4 apart (the bursts above, on either side; a garbage value is far
  more).
- rq->clock rate on the busy CPUs (cpu1, cpu2): the slope of the monitor's clock over
  its samples' jiffies, and of the guest's over its own CLOCK_MONOTONIC (the header's
  ktime), each within 20 % of 1, and within 20 % of each other. A CPU with runnable tasks
  updates rq->clock at every tick and switch; 20 % leaves room for a vCPU thread the
  loaded host did not run for a while near an end of the window (its clock stands
  still meanwhile, jiffies kept by another vCPU do not). Idle CPUs (cpu3, mostly cpu0)
  are not judged on rate: under NOHZ an idle CPU stops its tick and its rq->clock
  stands still until something wakes there, on both sides alike.
- rq->clock value on the busy CPUs, put on the jiffies axis (offset = clock - jiffies
  x tick): the medians of the two sides within 100 ms plus half the guest's longest
  read (the kernel prints CPU after CPU and task tables between them: a CPU's line is
  printed up to the whole read after the header's jiffies). A value that is not this
  CPU's ns clock (a counter, a flag word, a stale idle stamp) is off by far more.

Mutations tried (ktstr.monitor.rqreader.RqReader._setup, reverted after), each on a
real run of the EEVDF body:
- every CPU n read from cpu (n+1) % 4's runqueue: failed (cpu0's median 3, the
  guest's 0);
- `rq.clock` read 16 bytes further on (`clock_update_flags`): failed the rate check
  (monitor rate 0.0, the guest's 1.0);
- `rq.clock` read 8 bytes earlier (`clock_pelt`): passed, as it must: the kernel resyncs
  clock_pelt to clock_task whenever the CPU goes idle and, at full capacity, advances it
  with clock_task, which equals clock on this kernel (the guest prints them equal).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass

from ktstr.runner.vmrun import RunResult
from tests.vm import monitor_agree_bodies as bodies

BUSY = tuple(bodies.SPINNERS)  # cpus whose rq->clock must run with the guest's clock
NR_TOL = 1
SUM_TOL = 4  # any one pair
SUM_MEAN_TOL = 1.0  # the means over the window
RATE_TOL = 0.20
OFFSET_TOL_NS = 100_000_000


@dataclass(frozen=True)
class Reading:
    """One guest read of sched/debug: header clocks, then per CPU (nr_running, clock)."""

    ktime: int
    end: int
    jiffies: int
    cpus: dict[int, tuple[int, int]]


def _readings(r: RunResult) -> list[Reading]:
    assert r.result is not None, (r.outcome, r.error, r.console_tail)
    out = []
    for line in r.result["details"]:
        if line.startswith(bodies.PREFIX):
            d = json.loads(line[len(bodies.PREFIX):])
            out.append(Reading(d["ktime"], d["end"], d["jiffies"],
                               {c: (nr, clock) for c, nr, clock in d["cpus"]}))
    return sorted(out, key=lambda g: g.ktime)


def _nr(g: Reading, cpu: int) -> int:
    """The guest's nr_running of `cpu`, the reader itself taken out (see the module doc)."""
    return g.cpus[cpu][0] - (cpu == bodies.READER_CPU)


def _steady(readings: list[Reading]) -> list[Reading]:
    ok = [i for i, g in enumerate(readings)
          if all(g.cpus[c][0] >= n for c, n in bodies.SPINNERS.items())]
    assert ok, f"the guest never saw its spinners: {[g.cpus for g in readings]}"
    return readings[ok[0]:ok[-1] + 1]


def _hz(guest: list[Reading]) -> int:
    """The guest's HZ, from its own jiffies over its own CLOCK_MONOTONIC."""
    a, b = guest[0], guest[-1]
    hz = (b.jiffies - a.jiffies) / ((b.ktime - a.ktime) / 1e9)
    return min((100, 250, 300, 1000), key=lambda h: abs(h - hz))


def _nearest(guest: list[Reading], jiffies: int) -> Reading:
    return min(guest, key=lambda g: abs(g.jiffies - jiffies))


def _agreement(r: RunResult) -> dict[str, object]:
    """Compare the two views; returns the figures (asserting the tolerances above)."""
    assert r.passed, (r.outcome, r.error, r.report)
    guest = _steady(_readings(r))
    assert len(guest) >= 5, f"only {len(guest)} steady guest readings"
    assert r.monitor is not None
    mon = list(r.monitor.samples)
    mon = [s for s in mon if guest[0].jiffies <= s.jiffies <= guest[-1].jiffies]
    assert len(mon) >= 10, f"only {len(mon)} monitor samples in the guest's window"
    cpus = sorted(guest[0].cpus)
    assert cpus == [c.cpu for c in mon[0].cpus] == [0, 1, 2, 3], cpus
    hz = _hz(guest)
    tick = 1_000_000_000 // hz
    figs: dict[str, object] = {"guest_readings": len(guest), "monitor_samples": len(mon),
                               "hz": hz}

    # nr_running, CPU by CPU and summed, each sample against the nearest guest reading.
    pairs = [(s, _nearest(guest, s.jiffies)) for s in mon]
    for c in cpus:
        diffs = [s.cpus[c].nr_running - _nr(g, c) for s, g in pairs]
        figs[f"cpu{c}_nr_diffs"] = dict(sorted(Counter(diffs).items()))
        seen_mon = statistics.median_low(s.cpus[c].nr_running for s in mon)
        seen_guest = statistics.median_low(_nr(g, c) for g in guest)
        if c in bodies.SPINNERS:
            assert max(map(abs, diffs)) <= NR_TOL, (c, diffs)
            assert seen_mon == seen_guest == bodies.SPINNERS[c], (c, seen_mon, seen_guest)
        else:
            assert abs(seen_mon - seen_guest) <= NR_TOL and seen_mon <= 1, (c, seen_mon,
                                                                             seen_guest)
    sums = [sum(x.nr_running for x in s.cpus) - sum(_nr(g, c) for c in cpus)
            for s, g in pairs]
    figs["sum_nr_diffs"] = dict(sorted(Counter(sums).items()))
    mean_mon = statistics.fmean(sum(x.nr_running for x in s.cpus) for s in mon)
    mean_guest = statistics.fmean(sum(_nr(g, c) for c in cpus) for g in guest)
    figs["sum_nr_means"] = {"monitor": round(mean_mon, 2), "guest": round(mean_guest, 2)}
    assert abs(mean_mon - mean_guest) <= SUM_MEAN_TOL, figs
    assert max(map(abs, sums)) <= SUM_TOL, sums

    # rq->clock on the busy CPUs: rate against each side's own time, then the value.
    half_read = max(g.end - g.ktime for g in guest) // 2
    figs["guest_read_ms_max"] = round(2 * half_read / 1e6, 1)
    for c in BUSY:
        # Slopes fitted over the whole window, so that no one late print or descheduled
        # vCPU at an end decides the rate. The guest's line for a CPU is printed between
        # the header and the read's end: it is put at the middle of that span.
        guest_rate = statistics.linear_regression(
            [g.ktime + (g.end - g.ktime) / 2 for g in guest], [g.cpus[c][1] for g in guest]
        ).slope
        mon_clock = [s.cpus[c].clock_ns for s in mon]
        mon_rate = statistics.linear_regression([s.jiffies * tick for s in mon],
                                                mon_clock).slope
        host_rate = statistics.linear_regression([s.t * 1e9 for s in mon], mon_clock).slope
        figs[f"cpu{c}_rate"] = {"guest": round(guest_rate, 3), "monitor": round(mon_rate, 3),
                                "monitor_vs_host_time": round(host_rate, 3)}
        assert abs(guest_rate - 1) <= RATE_TOL, (c, figs)
        assert abs(mon_rate - 1) <= RATE_TOL, (c, figs)
        assert abs(mon_rate / guest_rate - 1) <= RATE_TOL, (c, figs)
        off_guest = statistics.median(
            g.cpus[c][1] - (g.jiffies * tick + (g.end - g.ktime) // 2) for g in guest)
        off_mon = statistics.median(s.cpus[c].clock_ns - s.jiffies * tick for s in mon)
        figs[f"cpu{c}_offset_diff_ms"] = round((off_mon - off_guest) / 1e6, 1)
        assert abs(off_mon - off_guest) <= OFFSET_TOL_NS + half_read, (c, figs)
    print(f"\n{r.test_id}: {figs}", file=sys.stderr)
    return figs


def test_monitor_agrees_with_the_guest_under_eevdf(run_vm):
    r = run_vm(bodies, "pinned_spinners_under_eevdf")
    assert r.monitor is not None and not any(s.attached for s in r.monitor.samples)
    _agreement(r)


def test_monitor_agrees_with_the_guest_under_scx_simple(run_vm):
    r = run_vm(bodies, "pinned_spinners_under_simple")
    assert r.monitor is not None
    mon = r.monitor.samples
    assert any(s.attached and s.ops_name == "simple" for s in mon), r.monitor.reason
    _agreement(r)
