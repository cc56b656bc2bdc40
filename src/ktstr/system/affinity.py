"""Where a host thread may run and how it is scheduled: the writers performance mode uses.

`pin_thread(tid, cpu)` sets a thread's affinity to one CPU (sched_setaffinity on
the thread id: affinity is per thread in Linux) and `set_fifo(tid, priority)` makes
it SCHED_FIFO. Both raise `SysIoError` naming the thread and the fix; the readers
of what took effect are in ktstr.system.proc (`task_cpus_allowed`).
"""

from __future__ import annotations

import os

from ktstr.system.fs import SysIoError


def pin_thread(tid: int, cpu: int) -> None:
    """Let thread `tid` run on host CPU `cpu` only."""
    try:
        os.sched_setaffinity(tid, {cpu})
    except OSError as e:
        raise SysIoError(f"cannot pin thread {tid} to CPU {cpu}: {e.strerror}; hint: the "
                         "CPU must be in this process's affinity (taskset, cpuset)",
                         f"/proc/{tid}", e.errno or 0) from e


def set_fifo(tid: int, priority: int) -> None:
    """Make thread `tid` SCHED_FIFO at `priority` (1-99)."""
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as e:
        raise SysIoError(f"cannot make thread {tid} SCHED_FIFO {priority}: {e.strerror}; "
                         "hint: run as root or raise RLIMIT_RTPRIO (ulimit -r)",
                         f"/proc/{tid}", e.errno or 0) from e
