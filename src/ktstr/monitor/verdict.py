"""The monitor's verdict: a series of runqueue samples judged against `Assert`'s monitor fields.

Pure logic over `MonitorSample`s (no guest, no I/O), so every rule is tested on
synthetic series. The definitions match the Rust ktstr's `MonitorThresholds::
evaluate` (the Rust ktstr's monitor thresholds, rule by rule):

- the first `warmup_samples` samples are dropped (the guest is still settling
  after the sampler's start delay), and only samples taken while a sched_ext
  scheduler was attached are judged; a detached sample breaks every run;
- imbalance = max(nr_running) / max(1, min(nr_running)) over the CPUs of a sample;
- DSQ depth = the largest `local_dsq_depth` of a sample;
- rq clock stall = a CPU whose `rq->clock` did not move between two consecutive
  samples although it had runnable tasks in either, unless its vCPU thread got
  less than `stall_min_vcpu_ns` of host CPU time in between (an idle NOHZ CPU
  does not tick its clock; a descheduled vCPU cannot);
- fallback / keep_last rate = delta of the summed event counter per second of
  host time between consecutive samples, per guest CPU: keep_last counts every
  slice expiry of a CPU with nothing else to run (scx_simple with one spinner
  per CPU: ~27/s per CPU under TCG, 110/s summed over 4 CPUs, measured), so a
  total would fail a healthy busy guest for having more CPUs;
- a violation counts only when it holds for `sustained_samples` consecutive
  samples (intervals, for the pair checks); the longest run is reported.

Data that cannot be trusted (nothing sampled, clocks that never move, negative
or absurd values, time going backwards) makes the result inconclusive, never a
pass or a fail: a monitor reading the wrong memory must not vouch for a scheduler.

`judge_monitor` gives the verdict (with the `--- monitor ---` block attached);
`summarize_monitor` gives the same figures as a `MonitorSummary` for the sidecar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ktstr.checks.result import AssertResult
from ktstr.checks.thresholds import Assert
from ktstr.errors import ConfigError
from ktstr.monitor.report import MonitorSummary, WatchdogResult
from ktstr.monitor.sample import CpuSample, MonitorSample

WARMUP_SAMPLES = 20  # the Rust ktstr drops these before judging
DEFAULT_SUSTAINED_SAMPLES = 5  # the Rust ktstr's default, used when the Assert leaves it unset
STALL_MIN_TICKS = 10  # host clock ticks a vCPU must have run for a still clock to count
DSQ_PLAUSIBILITY_CEILING = 10_000  # deeper local DSQs are uninitialised memory, not load
FALLBACK_EVENT = "select_cpu_fallback"
KEEP_LAST_EVENT = "dispatch_keep_last"


def host_tick_ns() -> int:
    """One host clock tick (USER_HZ) in nanoseconds."""
    return 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def default_stall_min_vcpu_ns() -> int:
    """10 host ticks: less host CPU than that and the vCPU had no fair chance to tick."""
    return STALL_MIN_TICKS * host_tick_ns()


@dataclass(slots=True)
class ViolationRun:
    """Consecutive violations of one check; keeps the longest run and where it ended.

    As the Rust `SustainedViolationTracker`: the value and position recorded are
    those of the sample that ended the longest run.
    """

    consecutive: int = 0
    worst_run: int = 0
    worst_value: float = 0.0
    worst_pos: int = -1  # position in the judged window of the sample ending the worst run

    def record(self, violated: bool, value: float, pos: int) -> None:
        if not violated:
            self.consecutive = 0
            return
        self.consecutive += 1
        if self.consecutive > self.worst_run:
            self.worst_run = self.consecutive
            self.worst_value = value
            self.worst_pos = pos

    def sustained(self, needed: int) -> bool:
        return self.worst_run >= needed


def judge_monitor(
    samples: Sequence[MonitorSample],
    checks: Assert,
    *,
    warmup_samples: int = WARMUP_SAMPLES,
    scheduler_expected: bool = True,
    stall_min_vcpu_ns: int | None = None,
    watchdog: WatchdogResult | None = None,
) -> AssertResult:
    """Judge a VM's sample series; the result carries the `--- monitor ---` block.

    `scheduler_expected`: a sched_ext scheduler should have been attached (a run
    under EEVDF passes it False: no attached sample is then nothing to judge, not
    a doubt). `watchdog` is only reported: the override as the test requested it
    and as read back from the guest (None: not overridden).
    """
    min_vcpu_ns = default_stall_min_vcpu_ns() if stall_min_vcpu_ns is None else stall_min_vcpu_ns
    _check_args(warmup_samples, min_vcpu_ns)
    summary = summarize_monitor(
        samples,
        warmup_samples=warmup_samples,
        stall_min_vcpu_ns=min_vcpu_ns,
        watchdog=watchdog,
    )
    result = AssertResult(monitor=summary.render_lines())
    window = list(samples[warmup_samples:])
    reason = _untrusted(samples, window, warmup_samples, scheduler_expected)
    if reason:
        result.add_inconclusive(f"monitor: {reason}")
        return result
    if not any(s.attached for s in window):
        return result  # no sched_ext scheduler, as expected: the monitor has nothing to judge
    sustained = checks.sustained_samples or DEFAULT_SUSTAINED_SAMPLES
    for line in _violations(window, checks, sustained, min_vcpu_ns):
        result.add_failure(line)
    return result


def _check_args(warmup_samples: int, min_vcpu_ns: int) -> None:
    if warmup_samples < 0:
        raise ConfigError(f"warmup_samples={warmup_samples} is invalid: it counts samples to "
                          f"drop; hint: use 0 to judge every sample, or {WARMUP_SAMPLES}")
    if min_vcpu_ns < 0:
        raise ConfigError(f"stall_min_vcpu_ns={min_vcpu_ns} is invalid: host CPU time cannot "
                          "be negative; hint: use 0 to count every still clock as a stall")


# --- trust -----------------------------------------------------------------------------


def _untrusted(
    samples: Sequence[MonitorSample],
    window: Sequence[MonitorSample],
    warmup: int,
    scheduler_expected: bool,
) -> str | None:
    """Why the series cannot be judged, or None when it can (or when nothing was to be
    judged: without an expected scheduler only attached samples would be)."""
    if not scheduler_expected and not any(s.attached for s in window):
        return None
    if not samples:
        return "no samples were taken"
    if not window:
        return f"no samples left after the {warmup} warm-up samples ({len(samples)} taken)"
    attached = [s for s in window if s.attached]
    if not attached:
        return (f"no sample with a sched_ext scheduler attached "
                f"({len(window)} samples after warm-up)")
    reason = _implausible(window)
    if reason:
        return reason
    if len(attached) >= 2 and not _any_clock_moved(attached):
        return (f"rq->clock never moved on any CPU over {len(attached)} samples: "
                "the monitor is not reading live runqueues")
    return None


def _implausible(window: Sequence[MonitorSample]) -> str | None:
    """The first value no running kernel can produce, named with its sample and CPU."""
    prev: MonitorSample | None = None
    for s in window:
        if not s.cpus:
            return f"sample {s.index} holds no CPUs"
        for c in s.cpus:
            bad = _bad_cpu_value(c)
            if bad:
                return f"sample {s.index}: cpu{c.cpu} {bad}"
        for name, value in s.events.items():
            if value < 0:
                return f"sample {s.index}: event counter {name}={value} is negative"
        if prev is not None:
            if s.t <= prev.t or s.index <= prev.index:
                return (f"host time went backwards: sample {s.index} at t={s.t:.3f}s "
                        f"after sample {prev.index} at t={prev.t:.3f}s")
            back = _went_backwards(prev, s)
            if back:
                return back
        prev = s
    return None


def _bad_cpu_value(c: CpuSample) -> str | None:
    for name in ("nr_running", "scx_nr_running", "local_dsq_depth", "clock_ns"):
        value = getattr(c, name)
        if value < 0:
            return f"{name}={value} is negative"
    if c.vcpu_cpu_ns is not None and c.vcpu_cpu_ns < 0:
        return f"vcpu_cpu_ns={c.vcpu_cpu_ns} is negative"
    if c.local_dsq_depth > DSQ_PLAUSIBILITY_CEILING:
        return (f"local_dsq_depth={c.local_dsq_depth} is above {DSQ_PLAUSIBILITY_CEILING}: "
                "uninitialised memory, not a queue")
    return None


def _went_backwards(prev: MonitorSample, cur: MonitorSample) -> str | None:
    before = {c.cpu: c for c in prev.cpus}
    for c in cur.cpus:
        p = before.get(c.cpu)
        if p is None:
            continue
        if c.clock_ns < p.clock_ns:
            return (f"rq->clock of cpu{c.cpu} went backwards between samples {prev.index} "
                    f"and {cur.index} ({p.clock_ns} -> {c.clock_ns})")
        if p.vcpu_cpu_ns is not None and c.vcpu_cpu_ns is not None \
                and c.vcpu_cpu_ns < p.vcpu_cpu_ns:
            return (f"host CPU time of cpu{c.cpu}'s vCPU thread went backwards between "
                    f"samples {prev.index} and {cur.index}")
    return None


def _any_clock_moved(attached: Sequence[MonitorSample]) -> bool:
    first = {c.cpu: c.clock_ns for c in attached[0].cpus}
    return any(c.clock_ns != first.get(c.cpu, c.clock_ns) for s in attached[1:] for c in s.cpus)


# --- the checks ------------------------------------------------------------------------


def imbalance_ratio(sample: MonitorSample) -> float:
    """max(nr_running) / max(1, min(nr_running)); 1.0 for a sample without CPUs."""
    if not sample.cpus:
        return 1.0
    counts = [c.nr_running for c in sample.cpus]
    return max(counts) / max(1, min(counts))


def is_stall(prev: CpuSample, cur: CpuSample, min_vcpu_ns: int) -> bool:
    """A still rq->clock on a CPU with runnable tasks whose vCPU did get the host CPU.

    A clock of 0 was never written (not sampled yet). Without both vCPU times
    there is no evidence of a descheduled vCPU, so the still clock counts.
    """
    if cur.clock_ns == 0 or cur.clock_ns != prev.clock_ns:
        return False
    if prev.nr_running == 0 and cur.nr_running == 0:
        return False  # idle: NOHZ stopped the tick
    if prev.vcpu_cpu_ns is not None and cur.vcpu_cpu_ns is not None:
        return cur.vcpu_cpu_ns - prev.vcpu_cpu_ns >= min_vcpu_ns
    return True


def _pairs(window: Sequence[MonitorSample]) -> list[tuple[int, MonitorSample | None]]:
    """For each position, the previous sample when both were taken attached, else None."""
    out: list[tuple[int, MonitorSample | None]] = []
    for pos, s in enumerate(window):
        prev = window[pos - 1] if pos else None
        ok = prev is not None and prev.attached and s.attached
        out.append((pos, prev if ok else None))
    return out


def _violations(
    window: Sequence[MonitorSample], checks: Assert, sustained: int, min_vcpu_ns: int
) -> list[str]:
    lines: list[str] = []
    if checks.max_imbalance_ratio is not None:
        lines += _check_imbalance(window, checks.max_imbalance_ratio, sustained)
    if checks.max_dsq_depth is not None:
        lines += _check_dsq(window, checks.max_dsq_depth, sustained)
    if checks.fail_on_stall:
        lines += _check_stalls(window, sustained, min_vcpu_ns)
    if checks.max_fallback_rate is not None:
        lines += _check_rate(window, FALLBACK_EVENT, "fallback", checks.max_fallback_rate,
                             sustained)
    if checks.max_keep_last_rate is not None:
        lines += _check_rate(window, KEEP_LAST_EVENT, "keep_last", checks.max_keep_last_rate,
                             sustained)
    return lines


def _check_imbalance(window: Sequence[MonitorSample], limit: float, sustained: int) -> list[str]:
    run = ViolationRun()
    for pos, s in enumerate(window):
        ratio = imbalance_ratio(s) if s.attached else 0.0
        run.record(s.attached and ratio > limit, ratio, pos)
    if not run.sustained(sustained):
        return []
    end = window[run.worst_pos]
    busiest = max(end.cpus, key=lambda c: c.nr_running)
    idlest = min(end.cpus, key=lambda c: c.nr_running)
    return [
        f"imbalance ratio {run.worst_value:.1f} exceeded threshold {limit:.1f} for "
        f"{run.worst_run} consecutive samples (ending at sample {end.index})"
        + _evidence(end, [busiest, idlest])
    ]


def _check_dsq(window: Sequence[MonitorSample], limit: int, sustained: int) -> list[str]:
    run = ViolationRun()
    for pos, s in enumerate(window):
        depth = max(c.local_dsq_depth for c in s.cpus) if s.attached else 0
        run.record(s.attached and depth > limit, depth, pos)
    if not run.sustained(sustained):
        return []
    end = window[run.worst_pos]
    deepest = max(end.cpus, key=lambda c: c.local_dsq_depth)
    return [
        f"local DSQ depth {int(run.worst_value)} on cpu{deepest.cpu} exceeded threshold "
        f"{limit} for {run.worst_run} consecutive samples (ending at sample {end.index})"
        + _evidence(end, [deepest])
    ]


def _check_stalls(window: Sequence[MonitorSample], sustained: int, min_vcpu_ns: int) -> list[str]:
    runs: dict[int, ViolationRun] = {}
    for pos, prev in _pairs(window):
        cur = window[pos]
        before = {c.cpu: c for c in prev.cpus} if prev is not None else {}
        seen: set[int] = set()
        for c in cur.cpus:
            run = runs.setdefault(c.cpu, ViolationRun())
            p = before.get(c.cpu)
            run.record(p is not None and is_stall(p, c, min_vcpu_ns), c.clock_ns, pos)
            seen.add(c.cpu)
        for cpu, run in runs.items():
            if cpu not in seen:
                run.record(False, 0.0, pos)
    lines = []
    for cpu in sorted(runs):
        run = runs[cpu]
        if not run.sustained(sustained):
            continue
        end = window[run.worst_pos]
        start = window[run.worst_pos - run.worst_run]  # the sample before the first still interval
        here = next(c for c in end.cpus if c.cpu == cpu)
        lines.append(
            f"rq_clock stall on cpu{cpu} for {run.worst_run} consecutive samples "
            f"(ending at sample {end.index}, clock={int(run.worst_value)})"
            + _evidence(end, [here], vcpu_since=start)
        )
    return lines


def _check_rate(
    window: Sequence[MonitorSample], event: str, label: str, limit: float, sustained: int
) -> list[str]:
    run = ViolationRun()
    for pos, prev in _pairs(window):
        cur = window[pos]
        rate = _rate(prev, cur, event)
        if rate is not None:
            rate /= max(1, len(cur.cpus))
        run.record(rate is not None and rate > limit, rate or 0.0, pos)
    if not run.sustained(sustained):
        return []
    end = window[run.worst_pos]
    prev = window[run.worst_pos - 1]
    return [
        f"{label} rate {run.worst_value:.1f}/s per CPU exceeded threshold {limit:.1f}/s for "
        f"{run.worst_run} consecutive intervals (ending at sample {end.index})"
        f"\n    {event} {prev.events[event]} -> {end.events[event]} over "
        f"{end.t - prev.t:.3f}s from sample {prev.index}"
        + _evidence(end, list(end.cpus))
    ]


def _rate(prev: MonitorSample | None, cur: MonitorSample, event: str) -> float | None:
    """Events per second over one interval; None when it cannot be told.

    A different scheduler, a missing counter or a counter that went down (the
    scheduler was reloaded, its `scx_sched` reallocated) is no rate at all.
    """
    if prev is None or prev.ops_name != cur.ops_name:
        return None
    a, b = prev.events.get(event), cur.events.get(event)
    if a is None or b is None or b < a or cur.t <= prev.t:
        return None
    return (b - a) / (cur.t - prev.t)


# --- evidence --------------------------------------------------------------------------


def _running(c: CpuSample) -> str:
    return "idle" if c.curr_pid == 0 else f"{c.curr_comm} (pid {c.curr_pid})"


def _evidence(
    end: MonitorSample, cpus: Sequence[CpuSample], *, vcpu_since: MonitorSample | None = None
) -> str:
    """What the named CPUs held at the sample that ended the run (issue 7 part 5)."""
    parts = []
    for c in dict.fromkeys(cpus):
        text = (f"cpu{c.cpu}: nr_running={c.nr_running} scx_nr_running={c.scx_nr_running} "
                f"local_dsq={c.local_dsq_depth} running {_running(c)}")
        if vcpu_since is not None:
            text += _vcpu_time(c, vcpu_since)
        parts.append(text)
    return f"\n    at sample {end.index}: " + "; ".join(parts)


def _vcpu_time(c: CpuSample, since: MonitorSample) -> str:
    old = next((o for o in since.cpus if o.cpu == c.cpu), None)
    if old is None or old.vcpu_cpu_ns is None or c.vcpu_cpu_ns is None:
        return ", vCPU host time unknown"
    got = (c.vcpu_cpu_ns - old.vcpu_cpu_ns) / 1e6
    return f", vCPU got {got:.0f}ms of host CPU since sample {since.index}"


# --- the summary -----------------------------------------------------------------------


def summarize_monitor(
    samples: Sequence[MonitorSample],
    *,
    warmup_samples: int = WARMUP_SAMPLES,
    stall_min_vcpu_ns: int | None = None,
    watchdog: WatchdogResult | None = None,
) -> MonitorSummary:
    """The series in figures (for the block and the sidecar), by the verdict's own rules.

    Computed over the same window as the checks (warm-up dropped, attached
    samples only), with the same interval rules for stalls and rates, so the
    block never contradicts a detail line.
    """
    min_vcpu_ns = default_stall_min_vcpu_ns() if stall_min_vcpu_ns is None else stall_min_vcpu_ns
    _check_args(warmup_samples, min_vcpu_ns)
    window = list(samples[warmup_samples:])
    judged = [s for s in window if s.attached and s.cpus]
    base = MonitorSummary(
        samples=len(samples),
        warmup_dropped=min(len(samples), warmup_samples),
        judged=len(judged),
        detached=sum(1 for s in window if not s.attached),
        stall_min_vcpu_ns=min_vcpu_ns,
        watchdog=watchdog,
    )
    if not judged:
        return base
    ratios = [(imbalance_ratio(s), s.index) for s in judged]
    top_ratio, top_ratio_at = max(ratios, key=lambda r: r[0])
    depth, depth_cpu, depth_at = max(
        ((c.local_dsq_depth, c.cpu, s.index) for s in judged for c in s.cpus),
        key=lambda d: d[0],
    )
    readings = [c.nr_running for s in judged for c in s.cpus]
    stalls, stalled = _stall_counts(window, min_vcpu_ns)
    events, rates, peaks = _event_figures(window)
    return replace(
        base,
        duration_s=judged[-1].t - judged[0].t,
        ops_names=tuple(dict.fromkeys(s.ops_name for s in judged if s.ops_name)),
        max_imbalance_ratio=top_ratio,
        max_imbalance_sample=top_ratio_at,
        avg_imbalance_ratio=sum(r for r, _ in ratios) / len(ratios),
        avg_nr_running=sum(readings) / len(readings),
        max_dsq_depth=depth,
        max_dsq_cpu=depth_cpu,
        max_dsq_sample=depth_at,
        stall_intervals=stalls,
        stalled_cpus=stalled,
        events=events,
        event_rates=rates,
        peak_rates=peaks,
    )


def _stall_counts(window: Sequence[MonitorSample], min_vcpu_ns: int) -> tuple[int, tuple[int, ...]]:
    count, cpus = 0, set[int]()
    for pos, prev in _pairs(window):
        if prev is None:
            continue
        before = {c.cpu: c for c in prev.cpus}
        for c in window[pos].cpus:
            p = before.get(c.cpu)
            if p is not None and is_stall(p, c, min_vcpu_ns):
                count += 1
                cpus.add(c.cpu)
    return count, tuple(sorted(cpus))


def _event_figures(
    window: Sequence[MonitorSample],
) -> tuple[dict[str, int], dict[str, float], dict[str, float]]:
    """Per counter: events over the measurable intervals, their rate, the worst interval."""
    names = list(dict.fromkeys(n for s in window if s.attached for n in s.events))
    counts: dict[str, int] = {}
    rates: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for name in names:
        total, seconds, peak = 0, 0.0, 0.0
        for pos, prev in _pairs(window):
            rate = _rate(prev, window[pos], name)
            if rate is None or prev is None:
                continue
            dt = window[pos].t - prev.t
            total += window[pos].events[name] - prev.events[name]
            seconds += dt
            peak = max(peak, rate)
        counts[name] = total
        rates[name] = total / seconds if seconds > 0 else 0.0
        peaks[name] = peak
    return counts, rates, peaks
