"""Per-task scheduler counters from /proc, named after the files they read.

`task_schedstat` (`/proc/<pid>/schedstat`: on-CPU ns, runqueue-wait ns, slices),
`task_sched` (`/proc/<pid>/sched`: every `name : value` line, e.g.
`se.nr_migrations`, `nr_switches`, `nr_voluntary_switches`,
`nr_involuntary_switches`), `task_cpu` (`/proc/<pid>/stat` field 39, the CPU the
task last ran on; the name of the kernel's `task_cpu()`), `task_status`
(`/proc/<pid>/status` as `name -> value` text), `task_cpus_allowed` (its
`Cpus_allowed_list`: the mask the task may run on now, i.e. the affinity it asked
for clipped to its cpuset), `task_cgroup` (its cgroup2 path, from
`/proc/<pid>/cgroup`), `ThreadPriority` (the calling thread's effective priority,
stat field 18, re-read through one open file) and `cpu_times` (the `cpu` line of
`/proc/stat`). Every reader takes `root` (the procfs mount) so unit tests use a fake
tree. A `pid` may be a thread id (/proc/<tid>/ exists for every thread even though
`ls /proc` hides it), or "self" / "thread-self" for the caller.

`/proc/<pid>/sched` needs CONFIG_SCHED_DEBUG (on in Debian kernels) and
schedstat needs CONFIG_SCHEDSTATS for its wait figure to be non-zero.
"""

from __future__ import annotations

import os
from pathlib import Path

from ktstr.errors import ConfigError
from ktstr.system import fs
from ktstr.topology import parse_cpulist

PROC_ROOT = Path("/proc")

#: /proc/<pid>/stat field numbers (1-based, as in proc(5)).
STAT_PRIORITY = 18
STAT_PROCESSOR = 39

#: A task: its pid or tid, or "self" / "thread-self" for the caller.
Task = int | str


def task_schedstat(pid: Task, root: Path = PROC_ROOT) -> tuple[int, int, int]:
    """(run_ns, wait_ns, slices): time on CPU, time runnable but waiting, timeslices run."""
    path = root / str(pid) / "schedstat"
    text = fs.read_text(path)
    fields = text.split()
    try:
        run_ns, wait_ns, slices = (int(v) for v in fields[:3])
    except ValueError:
        raise fs.SysIoError(f"cannot parse {path}: {text.strip()!r} is not three integers",
                            str(path)) from None
    return run_ns, wait_ns, slices


def thread_cpu_ns(pid: int, tid: int, root: Path = PROC_ROOT) -> int:
    """Nanoseconds thread `tid` of process `pid` has run on a CPU (its schedstat)."""
    return task_schedstat(tid, root / str(pid) / "task")[0]


def parse_sched(text: str) -> dict[str, float]:
    """Parse the `name : value` lines of /proc/<pid>/sched; others (header, rules) are skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        try:
            out[key] = float(value.strip())
        except ValueError:
            continue
    return out


def task_sched(pid: Task, root: Path = PROC_ROOT) -> dict[str, float]:
    """/proc/<pid>/sched as a dict: `se.nr_migrations`, `nr_switches`, ... (values as float)."""
    return parse_sched(fs.read_text(root / str(pid) / "sched"))


def parse_stat(text: str) -> list[str]:
    """Split /proc/<pid>/stat into fields, field 1 first (index 0 = pid, 1 = comm).

    The comm is the text between the first '(' and the LAST ')': it may itself
    hold spaces and parentheses (`a) b (c`), so splitting on spaces is wrong.
    """
    lpar = text.index("(")
    rpar = text.rindex(")")
    return [text[:lpar].strip(), text[lpar + 1:rpar], *text[rpar + 1:].split()]


def task_cpu(pid: Task, root: Path = PROC_ROOT) -> int:
    """The CPU `pid` ran on last (stat field 39, `processor`)."""
    path = root / str(pid) / "stat"
    text = fs.read_text(path)
    try:
        return int(parse_stat(text)[STAT_PROCESSOR - 1])
    except (ValueError, IndexError):
        raise fs.SysIoError(f"cannot parse {path}: field {STAT_PROCESSOR} missing in "
                            f"{text.strip()!r}", str(path)) from None


def parse_status(text: str) -> dict[str, str]:
    """Parse the `Name:\tvalue` lines of /proc/<pid>/status (values stripped, as text)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def task_status(pid: Task, root: Path = PROC_ROOT) -> dict[str, str]:
    """/proc/<pid>/status as a dict: `State`, `Tgid`, `Cpus_allowed_list`, ..."""
    return parse_status(fs.read_text(root / str(pid) / "status"))


def task_cpus_allowed(pid: Task, root: Path = PROC_ROOT) -> frozenset[int]:
    """The CPUs `pid` may run on (`Cpus_allowed_list`: the kernel's `p->cpus_ptr`)."""
    path = root / str(pid) / "status"
    value = task_status(pid, root).get("Cpus_allowed_list", "")
    try:
        cpus = parse_cpulist(value)
    except ConfigError:
        cpus = frozenset()
    if not cpus:
        raise fs.SysIoError(f"cannot parse {path}: Cpus_allowed_list is {value!r}, not a "
                            "CPU list", str(path))
    return cpus


def parse_cgroup(text: str) -> str:
    """The cgroup2 path of a /proc/<pid>/cgroup text, relative to the hierarchy root ("" for
    the root or when the task is in no cgroup2 hierarchy)."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip().strip("/")
    return ""


def task_cgroup(pid: Task = "self", root: Path = PROC_ROOT) -> str:
    """The cgroup2 path `pid` is in, relative to the hierarchy root ("" for the root).
    Read on every call: a task may be moved between two."""
    return parse_cgroup(fs.read_text(root / str(pid) / "cgroup"))


class ThreadPriority:
    """The calling thread's effective priority, `p->prio - 100` as stat field 18 shows it
    (20 + nice for a normal task, `-1 - rt_priority` for an RT one); a priority-inheritance
    boost lowers it. The file stays open: each `read()` is one pread(2), cheap enough for
    a worker's hot loop. Open it in the thread it describes; close it when done."""

    __slots__ = ("_fd", "path")

    def __init__(self, root: Path = PROC_ROOT) -> None:
        self.path = root / "thread-self" / "stat"
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise fs.SysIoError(f"cannot open {self.path}: {err.strerror}", str(self.path),
                                err.errno or 0) from err

    def read(self) -> int:
        raw = os.pread(self._fd, 1024, 0).decode("utf-8", "surrogateescape")
        return int(parse_stat(raw)[STAT_PRIORITY - 1])

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> ThreadPriority:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cpu_times(root: Path = PROC_ROOT) -> tuple[int, ...]:
    """The `cpu` line of /proc/stat: time of all CPUs in each state since boot, in
    USER_HZ ticks (user, nice, system, idle, iowait, irq, softirq, steal, ...)."""
    path = root / "stat"
    first = fs.read_text(path).partition("\n")[0].split()
    try:
        if first[0] != "cpu":
            raise ValueError(first[0])
        return tuple(int(v) for v in first[1:])
    except (ValueError, IndexError):
        raise fs.SysIoError(f"cannot parse {path}: first line {' '.join(first)!r} is not "
                            "the cpu line", str(path)) from None
