"""The C library, loaded once, and the calls into it that Python's `os` lacks.

`LIBC` is the process's own libc (`CDLL(None)`: the interpreter's symbols include
libc's; not `ctypes.util.find_library`, which runs `ldconfig -p` in a subprocess,
seconds of the guest's start-up under emulation), with errno kept for
`ctypes.get_errno()`. `function(name, restype, argtypes)` returns a fresh function
pointer, so each caller's types stay its own; `syscall` is syscall(2) returning a
long. Raw system calls need their number on this machine: `SYSCALL_NUMBERS` holds
the ones ktstr makes (futex, mbind, move_pages, sched_setattr, sched_getattr, bpf)
and `syscall_nr(name)` gives the number or None where it is unknown.

The `prctl(2)` calls a process makes on itself: `set_pdeathsig(sig)` (die with the
thread that forked it: no worker or VM outlives a crashed parent),
`set_child_subreaper(on)` (orphaned descendants are re-parented to the caller, which
can reap them), `set_comm(name)` (the task's `comm`, what `ps`, /proc/<pid>/comm and
schedulers show; the kernel keeps 15 bytes) and `timer_slack_ns()`.

`Timespec` is `struct timespec`. Every libc and raw system call of ktstr goes
through this module.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from typing import Any

#: The process's libc; errno is saved after every call for `ctypes.get_errno()`.
LIBC = ctypes.CDLL(None, use_errno=True)

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_GET_TIMERSLACK = 30
PR_SET_CHILD_SUBREAPER = 36
#: TASK_COMM_LEN (16) minus the terminating NUL.
COMM_MAX_BYTES = 15

#: The machine's architecture, as `platform.machine()` says it: read from uname(2) directly,
#: since importing `platform` compiles a dozen regular expressions, a cost the guest agent
#: pays before its hello.
MACHINE = os.uname().machine

#: System call numbers by machine (`MACHINE`) of the raw calls ktstr makes.
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "futex": {"x86_64": 202, "aarch64": 98, "riscv64": 98, "ppc64le": 221, "s390x": 238},
    "mbind": {"x86_64": 237, "aarch64": 235, "riscv64": 235},
    "move_pages": {"x86_64": 279, "aarch64": 239, "riscv64": 239},
    "sched_setattr": {"x86_64": 314, "aarch64": 274},
    "sched_getattr": {"x86_64": 315, "aarch64": 275},
    "bpf": {"x86_64": 321, "aarch64": 280},
}


class Timespec(ctypes.Structure):
    """`struct timespec`: seconds and nanoseconds."""

    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def function(name: str, restype: Any = ctypes.c_int,
             argtypes: Sequence[Any] | None = None) -> Callable[..., Any]:
    """libc's `name` as a new function pointer with these result and argument types."""
    fn = LIBC[name]
    fn.restype = restype
    if argtypes is not None:
        fn.argtypes = list(argtypes)
    return fn


#: syscall(2): `syscall(nr, args...)`, the result as a C long (-1 and errno on error).
syscall = function("syscall", ctypes.c_long)


def syscall_nr(name: str) -> int | None:
    """The number of system call `name` on this machine, None when ktstr does not know it."""
    return SYSCALL_NUMBERS[name].get(MACHINE)


_prctl = function("prctl", ctypes.c_int, [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                          ctypes.c_ulong, ctypes.c_ulong])


def _prctl_call(option: int, arg: int) -> int:
    rc = int(_prctl(option, arg, 0, 0, 0))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return rc


def set_pdeathsig(sig: int) -> None:
    """Deliver `sig` to the calling process when its parent thread exits."""
    _prctl_call(PR_SET_PDEATHSIG, int(sig))


def set_comm(name: str) -> None:
    """Set the calling thread's comm (truncated by the kernel to 15 bytes)."""
    buf = ctypes.create_string_buffer(name.encode("utf-8")[:COMM_MAX_BYTES])
    _prctl_call(PR_SET_NAME, ctypes.addressof(buf))


def set_child_subreaper(on: bool) -> None:
    """Make the calling process the reaper of its orphaned descendants (or stop)."""
    _prctl_call(PR_SET_CHILD_SUBREAPER, int(on))


def timer_slack_ns() -> int:
    """The calling thread's timer slack in nanoseconds (`PR_GET_TIMERSLACK`)."""
    return _prctl_call(PR_GET_TIMERSLACK, 0)
