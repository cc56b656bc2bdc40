"""Real processes for the unit tests that need one (cgroup moves, freezes, work types)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

from ktstr.work import CloneMode, WorkType
from ktstr.workload import WorkerReport, WorkloadConfig, WorkloadHandle


def spinner() -> int:
    """Fork a child that spins until killed; returns its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            while True:
                pass
        finally:
            os._exit(0)
    return pid


def reap(pid: int) -> int:
    """Kill (if alive) and reap `pid`; returns its wait status."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def run_workers(work: WorkType, workers: int = 2, secs: float = 0.6, *,
                during: Callable[[list[int]], None] | None = None,
                clone_mode: CloneMode = CloneMode.FORK) -> list[WorkerReport]:
    """Run `workers` real workers of `work` for `secs` (not in a cgroup); `during(pids)`
    is called half-way. Every report must be error-free and name the work type."""
    cfg = WorkloadConfig(workers=workers, work=work, clone_mode=clone_mode)
    with WorkloadHandle.spawn(cfg, start=True) as h:
        time.sleep(secs / 2)
        if during is not None:
            during(h.pids)
        time.sleep(secs / 2)
        reports = h.stop_and_collect()
    for r in reports:
        assert r.error == "", r.error
        assert r.work_type == work.name, (r.work_type, work.name)
    return reports
