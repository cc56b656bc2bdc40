"""What the kernel counted for the calling worker, snapshot at start and at stop.

`Counters.read()` takes one snapshot of the calling process: on-CPU and
runqueue-wait nanoseconds (`/proc/<pid>/schedstat` fields 1 and 2), migrations
(`se.nr_migrations` of `/proc/<pid>/sched`) and context switches
(`getrusage(RUSAGE_SELF)`: `ru_nvcsw`/`ru_nivcsw`). A report carries the
difference of two snapshots, so work done before the start barrier (fork,
cgroup join, pinning) is not counted. The /proc files are read through
`ktstr.system.proc`.

`wake_latency` turns the loop's sleep-overshoot samples into the report's
percentiles (microseconds, nearest rank).
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

from ktstr.system import proc
from ktstr.work.report import WakeLatency


@dataclass(frozen=True, slots=True)
class Counters:
    """One snapshot (or the difference of two) of a task's scheduler counters."""

    cpu_ns: int = 0
    run_delay_ns: int = 0
    migrations: int = 0
    voluntary_csw: int = 0
    involuntary_csw: int = 0

    @classmethod
    def read(cls, pid: int | None = None) -> Counters:
        """The counters of `pid` (default: the calling process, which must be it for
        the context switches: getrusage only sees the caller)."""
        pid = os.getpid() if pid is None else pid
        run_ns, wait_ns, _ = proc.task_schedstat(pid)
        migrations = int(proc.task_sched(pid).get("se.nr_migrations", 0))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(run_ns, wait_ns, migrations, usage.ru_nvcsw, usage.ru_nivcsw)

    def __sub__(self, before: Counters) -> Counters:
        return Counters(
            self.cpu_ns - before.cpu_ns,
            self.run_delay_ns - before.run_delay_ns,
            self.migrations - before.migrations,
            self.voluntary_csw - before.voluntary_csw,
            self.involuntary_csw - before.involuntary_csw,
        )


def percentile(sorted_values: list[int], pct: float) -> int:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def wake_latency(samples_ns: list[int], count: int) -> WakeLatency:
    """Percentiles in µs of `samples_ns` (a reservoir of `count` wakeups)."""
    if not samples_ns:
        return WakeLatency()
    ordered = sorted(samples_ns)
    return WakeLatency(
        count=count,
        p50=percentile(ordered, 50) / 1e3,
        p90=percentile(ordered, 90) / 1e3,
        p99=percentile(ordered, 99) / 1e3,
        max=ordered[-1] / 1e3,
    )
