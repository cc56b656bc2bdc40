"""SIGINT and SIGTERM end a run as interrupted, its VMs stopped in order.

A terminal's Ctrl-C and a CI system cancelling a job are signals to the run's
process group: SIGINT, or SIGTERM. qemu runs in a process group of its own
(ktstr.vm.machine), so they reach the harness only. `stop_on_signals` turns
both into `Interrupted`, a `KeyboardInterrupt` raised in the main thread, so
they take the path Ctrl-C always took: each VM on the way out is stopped
through its shutdown ladder, `run_in_vm` writes the running test's sidecar
with the outcome `interrupted` and the signal's name, and pytest ends the
session as interrupted (exit status 2, its `ExitCode.INTERRUPTED`).

A signal the process started with ignored stays ignored: under `nohup`, or as
a background job of a non-interactive shell, SIGINT is meant to miss it. A
second signal while the first one unwinds is logged and dropped for
`STOP_GRACE_S`: the ladder takes a few seconds at most, and an exception in
the middle of it would leave a VM unstopped and the sidecar unwritten; after
that a signal raises again, in case the first one was swallowed somewhere.

The handlers are per process and set from the main thread only (Python runs
handlers there), so each pytest-xdist worker that loads the plugin installs
its own and receives the group's signal itself; a signal sent to the
controller alone is passed on to the workers (`forward_signal`, from
ktstr.pytest_plugin.workers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

#: The signals that end a run as interrupted.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: How long a repeated signal is ignored while the first one stops the run.
STOP_GRACE_S = 10.0


class Interrupted(KeyboardInterrupt):
    """The run was told to stop by `signum`. A KeyboardInterrupt on purpose: pytest, and
    every `except BaseException` that stops a VM, already treat one as an interruption."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def signal_behind(exc: KeyboardInterrupt) -> signal.Signals:
    """The signal that raised `exc`: its own, or SIGINT for a plain KeyboardInterrupt
    (what Python's default SIGINT handler raises)."""
    return signal.Signals(exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)


def exit_status(exc: KeyboardInterrupt) -> int:
    """The shell's status for a process ended by `exc`'s signal: 128 + its number."""
    return 128 + int(signal_behind(exc))


def forward_signal(pid: int, signum: int) -> None:
    """Pass a stop signal on to another process of the run (a pytest-xdist worker); one
    that has already gone is no error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


class _Stopper:
    """The handler of STOP_SIGNALS: raise Interrupted once, then let the stop finish."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        name = signal.Signals(signum).name
        if self.first is not None and now - self.first < STOP_GRACE_S:
            log.warning("%s: already stopping; the VMs are being shut down", name)
            return
        self.first = now
        raise Interrupted(signum)


def _ours(handler: object) -> bool:
    return isinstance(handler, _Stopper)


@contextlib.contextmanager
def stop_on_signals(*, then_ignore: bool = False) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise `Interrupted` in the main thread, unless the
    process ignores them (or handles them its own way); the previous handlers come
    back on the way out, or, with `then_ignore`, the signals are ignored from then on
    (a command whose exit status is decided, about to exit: a signal during the
    interpreter's shutdown would only replace that status). Nested uses and other
    threads change nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopper = _Stopper()
    previous: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if _ours(current):
            continue
        # Python's own Ctrl-C handler for SIGINT, the kernel's default for SIGTERM: a
        # signal ignored (SIG_IGN) or handled by someone else is left as it is.
        default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        if current is default:
            previous[sig] = current
            signal.signal(sig, stopper)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_IGN if then_ignore else handler)
