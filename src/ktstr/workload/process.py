"""Run an external program as a workload: placed in its cgroup before it execs.

`ChildProcess.spawn(argv, cgroup_dir=...)` forks; the child joins the cgroup
(writes 0, "myself", to its `cgroup.procs`), becomes the leader of its own
process group, then execs. So the program's first instruction already runs in
its cgroup under its cpuset: a sched_ext scheduler sees it there from the start
(a payload is placed before it execs, never moved after). stdout and stderr are drained by two
threads into memory while it runs, so a chatty program never blocks on a full
pipe. `kill()` sends SIGKILL to the whole group, reaching anything the program
forked (stress-ng's workers, fio's jobs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ktstr.errors import KtstrError

log = logging.getLogger(__name__)

#: Bytes kept per stream; beyond that the head is dropped (the end says how a run ended).
MAX_CAPTURE = 16 << 20
#: After the program is reaped, how long its drainers may wait for descendants to let go.
DRAIN_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class ChildExit:
    """How the program ended: `returncode` < 0 is death by that signal (as in subprocess)."""

    pid: int
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    killed: bool  # we sent the SIGKILL

    @property
    def signal(self) -> int | None:
        return -self.returncode if self.returncode < 0 else None

    @property
    def exit_code(self) -> int | None:
        return self.returncode if self.returncode >= 0 else None


class _Drain(threading.Thread):
    def __init__(self, stream: IO[bytes], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stream = stream
        self.data = bytearray()

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(self.stream.fileno(), 65536):
                self.data += chunk
                if len(self.data) > MAX_CAPTURE:
                    del self.data[:len(self.data) - MAX_CAPTURE]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _joiner(procs: Path | None) -> Callable[[], None] | None:
    """The child's last step before exec: join `procs` (its cgroup.procs)."""
    if procs is None:
        return None
    path = str(procs)

    def join() -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, b"0")  # cgroup v2: pid 0 is the writing process itself
        finally:
            os.close(fd)
    return join


class ChildProcess:
    """One running program; see the module docstring."""

    def __init__(self, proc: subprocess.Popen[bytes], started: float) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.started = started
        self.killed = False
        assert proc.stdout is not None and proc.stderr is not None
        self._out = _Drain(proc.stdout, f"ktstr-out {proc.pid}")
        self._err = _Drain(proc.stderr, f"ktstr-err {proc.pid}")
        self._out.start()
        self._err.start()

    @classmethod
    def spawn(cls, argv: Sequence[str], *, cgroup_dir: Path | None = None,
              env: dict[str, str] | None = None) -> ChildProcess:
        """Start `argv` (argv[0] an absolute path) in `cgroup_dir`; KtstrError if it cannot."""
        procs = None if cgroup_dir is None else cgroup_dir / "cgroup.procs"
        if procs is not None and not procs.exists():
            raise KtstrError(f"cannot start {argv[0]} in {cgroup_dir}: no cgroup.procs there; "
                             "hint: create the cgroup first (Op.add_cgroup or a CgroupDef)")
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=_joiner(procs), process_group=0, env=env)
        except subprocess.SubprocessError as err:  # the cgroup join failed in the child
            raise KtstrError(f"cannot start {argv[0]}: joining {procs} before exec failed "
                             f"({err}); hint: is the cgroup's cpuset empty or the cgroup "
                             "being removed?") from err
        except OSError as err:
            raise KtstrError(f"cannot start {argv[0]}: {err.strerror} (errno {err.errno}); "
                             "hint: check that it is an executable for this machine") from err
        return cls(proc, time.monotonic())

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> ChildExit:
        """Wait for the program to end (at most `timeout` s, then it is killed)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()
        return self._finish()

    def kill(self) -> ChildExit:
        """SIGKILL the program's whole process group, reap it, return how it ended."""
        if self.proc.poll() is None:
            self.killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait()
        return self._finish()

    def _finish(self) -> ChildExit:
        wall = time.monotonic() - self.started
        # Descendants left in the group still hold the pipes: end them so the drainers end.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for d in (self._out, self._err):
            d.join(DRAIN_GRACE_S)
            if d.is_alive():
                log.warning("pid %d: output of a descendant still open after %gs",
                            self.pid, DRAIN_GRACE_S)
        rc = self.proc.returncode
        assert rc is not None
        return ChildExit(pid=self.pid, returncode=rc, stdout=self._out.text(),
                         stderr=self._err.text(), wall_s=wall, killed=self.killed)
