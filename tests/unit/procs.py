"""Real processes for the unit tests that need one (cgroup moves, freezes)."""

from __future__ import annotations

import contextlib
import os
import signal


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
