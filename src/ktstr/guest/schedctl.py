"""The scheduler under test, inside the guest: start it, watch it, stop it, say how it ended.

Start: apply the scheduler's sysctls, launch its binary (or run a kernel
built-in's enable commands), and wait until sched_ext reports `enabled` with a
`root/ops` name, or fail with the scheduler's own output ("never attached").
Watch: `SchedulerWatch` polls every 100 ms that the process lives and sched_ext
stays enabled; the moment either stops, it calls back (the agent interrupts the
test body, so a dead scheduler fails the run at once instead of at the host's
deadline). Stop: SIGINT, as a user would, then SIGKILL after a grace period.

How it ended is the kernel's word, from its log: `sched_ext: BPF scheduler
"NAME" disabled (REASON)` (see ktstr.system.sched_ext): clean (unregistered
from user space, after our stop), error exit (scx_bpf_error, runtime error:
with the exit message and the scheduler's dump from its output), watchdog stall
(runnable task stall), detached (it unregistered on its own mid-run), crash
(the process died without an error report), never attached.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ktstr.errors import KtstrError
from ktstr.protocol import SchedEnd, SchedulerOrder, SchedulerRun
from ktstr.system import bpf, sched_ext

__all__ = ["ManagedScheduler", "SchedEnd", "SchedulerFailed", "SchedulerOrder",
           "SchedulerRun", "SchedulerWatch"]


OUTPUT_TAIL_LINES = 40
POLL_S = 0.1


class SchedulerFailed(Exception):
    def __init__(self, run: SchedulerRun) -> None:
        super().__init__(run.summary())
        self.run = run


class ManagedScheduler:
    def __init__(self, order: SchedulerOrder, log_dir: Path = Path("/run")) -> None:
        self.order = order
        self.run = SchedulerRun(order.name, list(order.argv))
        self._log_path = log_dir / f"ktstr-sched-{os.getpid()}-{order.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._kmsg = sched_ext.KmsgReader()
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Launch and wait until attached; SchedulerFailed ("never attached") otherwise."""
        o = self.order
        for path, content in o.files:  # the test's inline config (config_file_def)
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(content)
            except OSError as e:
                self.run.end, self.run.message = SchedEnd.NEVER, f"cannot write {path}: {e}"
                raise SchedulerFailed(self.run) from e
        for key, value in o.sysctls:
            sched_ext.set_sysctl(key, value)
        started = time.monotonic()
        with open(self._log_path, "wb") as out:
            if o.argv:
                self._proc = subprocess.Popen(o.argv, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True)
                self.run.pid = self._proc.pid
            for cmd in o.enable:
                subprocess.run(["/bin/sh", "-c", cmd], stdout=out, stderr=subprocess.STDOUT,
                               check=False)
        deadline = started + o.attach_timeout_s
        while time.monotonic() < deadline:
            ops = sched_ext.ops_name()
            if sched_ext.state() == "enabled" and ops:
                self.run.ops, self.run.attach_s = ops, time.monotonic() - started
                self.run.programs = self._programs()
                return
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(POLL_S)
        # It may have attached and failed before we saw it (a stall of our own process,
        # an error in its first milliseconds): the kernel's log says which.
        self._kmsg.poll()
        seen = sched_ext.enabled_ops(self._kmsg.lines)
        if seen is not None:
            self.run.ops = seen
        self._end(None if seen is not None else SchedEnd.NEVER)
        if not self.run.reason:
            self.run.message = self.run.message or (
                f"sched_ext state {sched_ext.state() or 'absent'!r} after "
                f"{time.monotonic() - started:.1f}s (attach timeout {o.attach_timeout_s:g}s)")
        self._kill()
        raise SchedulerFailed(self.run)

    def healthy(self) -> bool:
        """Still attached and running; records how it ended the first time it is not."""
        if self.run.end:
            return False
        alive = self._proc is None or self._proc.poll() is None
        if alive and sched_ext.state() == "enabled":
            return True
        time.sleep(POLL_S)  # let the kernel finish its report and the process its dump
        self._end(None)
        return False

    def stop(self, grace_s: float = 10.0) -> SchedulerRun:
        """Ask it to leave (SIGINT, or the disable commands), then make sure it has."""
        self._stopping = True
        if not self.run.end:
            if self._proc is not None and self._proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.send_signal(signal.SIGINT)
                try:
                    self._proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    self._kill()
            for cmd in self.order.disable:
                subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, check=False)
            deadline = time.monotonic() + grace_s
            while sched_ext.state() not in ("disabled", "") and time.monotonic() < deadline:
                time.sleep(POLL_S)
            self._end(None)
        self._kmsg.close()
        return self.run

    # -- how it ended ------------------------------------------------------------------

    def _end(self, forced: SchedEnd | None) -> None:
        if self._proc is not None and self._proc.poll() is None and forced is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1.0)  # the kernel disabled it: its exit follows
        self.run.exit_code = self._proc.poll() if self._proc is not None else None
        self._kmsg.poll()
        self.run.kernel_log = [line for line in self._kmsg.lines if "sched_ext" in line]
        disabled = sched_ext.parse_disabled(self._kmsg.lines)
        if disabled is not None:
            self.run.reason, self.run.message = disabled.reason, disabled.message
        self.run.output_tail = self._output_tail()
        self.run.end = forced or self._classify(disabled)

    def _classify(self, disabled: sched_ext.Disabled | None) -> SchedEnd:
        reason = disabled.reason if disabled is not None else ""
        if reason in sched_ext.STALL_REASONS:
            return SchedEnd.STALL
        if reason in sched_ext.ERROR_REASONS:
            return SchedEnd.ERROR
        code = self.run.exit_code
        if code is not None and code < 0 and -code not in (signal.SIGINT, signal.SIGTERM):
            return SchedEnd.CRASH  # killed by a signal of its own making (SIGSEGV...)
        if not self.run.ops:
            return SchedEnd.NEVER
        if reason in sched_ext.CLEAN_REASONS or (disabled is None and not code):
            return SchedEnd.CLEAN if self._stopping else SchedEnd.DETACHED
        return SchedEnd.CRASH if code else SchedEnd.DETACHED

    def _output_tail(self) -> str:
        try:
            lines = self._log_path.read_text(errors="replace").rstrip().splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-OUTPUT_TAIL_LINES:])

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def _programs(self) -> list[dict[str, Any]]:
        """The scheduler process's BPF programs; never fails the run (a reader problem
        becomes an entry with an `error`)."""
        if self._proc is None:
            return []
        out: list[dict[str, Any]] = []
        try:
            progs = bpf.session_progs(self._proc.pid)  # its own session: start_new_session
        except (OSError, KtstrError) as e:
            return [{"error": f"cannot list the scheduler's BPF programs: {e}"}]
        for fdp in progs:
            entry: dict[str, Any] = {"id": fdp.prog_id, "type": bpf.prog_type_name(fdp.prog_type),
                                     "fdinfo_verified_insns": fdp.verified_insns}
            try:
                entry.update(bpf.prog_info(fdp.prog_id).to_dict())
            except OSError as e:
                entry["error"] = f"bpf_prog_info: {e}"
            out.append(entry)
        return out


class Watched(Protocol):
    def healthy(self) -> bool: ...


class SchedulerWatch:
    """A thread calling `on_failure` once, as soon as the scheduler is no longer healthy."""

    def __init__(self, sched: Watched, on_failure: Callable[[], None]) -> None:
        self._sched = sched
        self._on_failure = on_failure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ktstr-sched-watch",
                                        daemon=True)

    def start(self) -> SchedulerWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            if not self._sched.healthy():
                self._on_failure()
                return
