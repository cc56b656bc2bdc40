"""The scheduler's own per-CPU view: debugfs `sched/debug` (once /proc/sched_debug).

Since 5.13 the file lives at /sys/kernel/debug/sched/debug (CONFIG_DEBUG_FS; the
guest's init mounts debugfs), and since 6.x it no longer needs CONFIG_SCHED_DEBUG.
Its header holds the clocks (`ktime` = CLOCK_MONOTONIC, `cpu_clk` = the
`sched_clock_cpu()` that `rq->clock` follows, `jiffies`); then, per CPU, a
`cpu#N, ... MHz` line and the runqueue's own `.name : value` lines (`.nr_running`,
`.clock`, ...), before the per-class sections (`cfs_rq[N]:...`, `rt_rq[N]:`,
`dl_rq[N]:`) and the `runnable tasks:` table, which this reader skips: their
`.nr_*` lines are the class's, not the runqueue's.

Nanosecond fields are printed `%Ld.%06ld` (milliseconds, six decimals), so they
parse back to exact nanoseconds. The kernel prints each CPU's section in turn
without stopping the others: one read is not one instant (a 4-CPU guest under
TCG takes ~50 ms to print the whole file, most of it the task tables).

`has_fair_server` says whether debugfs has `sched/fair_server/` (the CFS deadline
server of Linux 6.12+).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ktstr.system import fs

DEBUGFS_ROOT = Path("/sys/kernel/debug")

_CPU = re.compile(r"cpu#(\d+)\b")
_FIELD = re.compile(r"\s*\.?([A-Za-z_][\w.>()-]*)\s*:\s*(-?\d+)(?:\.(\d{6}))?\b")
_SECTION_END = re.compile(r"(cfs_rq|rt_rq|dl_rq)\[\d+\]|runnable tasks:")


@dataclass(frozen=True, slots=True)
class CpuDebug:
    """One runqueue as `print_cpu()` shows it (`struct rq` fields)."""

    cpu: int
    nr_running: int  # rq->nr_running
    clock_ns: int  # rq->clock
    clock_task_ns: int  # rq->clock_task
    nr_switches: int
    curr_pid: int  # rq->curr->pid (0: idle)


@dataclass(frozen=True, slots=True)
class SchedDebug:
    """One read of the file: the header's clocks and every CPU's runqueue."""

    ktime_ns: int  # CLOCK_MONOTONIC when the kernel began printing
    cpu_clk_ns: int  # sched_clock_cpu() of the printing CPU, the clock rq->clock follows
    jiffies: int
    cpus: tuple[CpuDebug, ...]

    def cpu(self, n: int) -> CpuDebug:
        for c in self.cpus:
            if c.cpu == n:
                return c
        raise KeyError(f"cpu{n} is not in sched/debug (cpus {[c.cpu for c in self.cpus]})")


def _value(m: re.Match[str]) -> int:
    """`12.345678` (ms, from SPLIT_NS) as ns; a plain integer as itself."""
    whole, frac = int(m[2]), m[3]
    if frac is None:
        return whole
    ns = abs(whole) * 1_000_000 + int(frac)
    return -ns if m[2].startswith("-") else ns


def parse_sched_debug(text: str) -> SchedDebug:
    """Parse the header and each CPU's runqueue lines; raises ValueError naming what is
    missing when the text is not a sched/debug of a kernel we know."""
    header: dict[str, int] = {}
    cpus: dict[int, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in text.splitlines():
        if m := _CPU.match(line):
            current = cpus.setdefault(int(m[1]), {})
            continue
        if _SECTION_END.match(line):
            current = None
            continue
        m = _FIELD.match(line)
        if m is None:
            continue
        if current is not None and line.lstrip().startswith("."):
            current.setdefault(m[1], _value(m))
        elif not cpus:
            header.setdefault(m[1], _value(m))
    missing = [k for k in ("ktime", "cpu_clk", "jiffies") if k not in header]
    if missing or not cpus:
        raise ValueError(f"not a sched/debug text: no {', '.join(missing) or 'cpu# section'}")
    out = []
    for n, f in sorted(cpus.items()):
        try:
            out.append(CpuDebug(cpu=n, nr_running=f["nr_running"], clock_ns=f["clock"],
                                clock_task_ns=f["clock_task"], nr_switches=f["nr_switches"],
                                curr_pid=f["curr->pid"]))
        except KeyError as e:
            raise ValueError(f"sched/debug cpu#{n} has no .{e.args[0]} line") from None
    return SchedDebug(ktime_ns=header["ktime"], cpu_clk_ns=header["cpu_clk"],
                      jiffies=header["jiffies"], cpus=tuple(out))


def sched_debug(root: Path = DEBUGFS_ROOT) -> SchedDebug:
    """Read and parse `<debugfs>/sched/debug` (root: the debugfs mount)."""
    path = root / "sched" / "debug"
    text = fs.read_text(path)
    try:
        return parse_sched_debug(text)
    except ValueError as e:
        raise fs.SysIoError(f"cannot parse {path}: {e}", str(path)) from None


def has_fair_server(root: Path = DEBUGFS_ROOT) -> bool:
    """Whether debugfs shows `sched/fair_server/` (Linux 6.12+: CFS runs under a deadline
    server); False also when debugfs is not mounted."""
    return (root / "sched" / "fair_server").is_dir()
