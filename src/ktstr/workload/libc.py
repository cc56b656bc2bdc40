"""The two `prctl(2)` calls a worker makes, through ctypes (Python has no binding).

- `set_pdeathsig(sig)`: `PR_SET_PDEATHSIG`, so a worker dies with the thread that
  forked it (no worker outlives a crashed parent).
- `set_child_subreaper(on)`: `PR_SET_CHILD_SUBREAPER`, so orphaned descendants
  (a worker's children after the worker died) are re-parented to the caller,
  which can then reap them.
- `set_comm(name)`: `PR_SET_NAME`, the task's `comm` (what `ps`, `/proc/<pid>/comm`
  and schedulers' per-task names show); the kernel keeps 15 bytes.
"""

from __future__ import annotations

import ctypes
import os

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
#: TASK_COMM_LEN (16) minus the terminating NUL.
COMM_MAX_BYTES = 15

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.restype = ctypes.c_int
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong]


def _call(option: int, arg: int) -> None:
    if _prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def set_pdeathsig(sig: int) -> None:
    """Deliver `sig` to the calling process when its parent thread exits."""
    _call(PR_SET_PDEATHSIG, sig)


def set_comm(name: str) -> None:
    """Set the calling thread's comm (truncated by the kernel to 15 bytes)."""
    buf = ctypes.create_string_buffer(name.encode("utf-8")[:COMM_MAX_BYTES])
    _call(PR_SET_NAME, ctypes.addressof(buf))


def set_child_subreaper(on: bool) -> None:
    """Make the calling process the reaper of its orphaned descendants (or stop)."""
    _call(PR_SET_CHILD_SUBREAPER, int(on))
