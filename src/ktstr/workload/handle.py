"""`WorkloadHandle`: a group of forked workers, from spawn to reaped reports.

Lifecycle: `spawn` forks `cfg.workers` workers (`worker.fork_worker`) and
returns once every one has joined its cgroup and said ready (or raises the
first worker's set-up error, after killing the others); `start()` opens the
start gate for all of them at once; `stop_and_collect()` sets the stop flag,
reads each report from its pipe, SIGKILLs the process group of any worker still
running `grace` seconds later, reaps every worker and returns one
`WorkerReport` per worker, in spawn order. `kill()` (and leaving the `with`
block, however it is left) SIGKILLs and reaps whatever is left; it is
idempotent and a no-op after a collect.

In thread mode (`cfg.threaded`) one forked leader hosts every worker as a
thread (`worker.fork_leader`); each thread still has its own pipe and report,
`pids` lists the threads' tids and `leader_pids` the one leader. Killing and
reaping act on the leader (its process group), once.

All waiting is on the workers' pipes (poll) or on their exit (waitpid), with
deadlines; nothing sleeps to poll. Workers die with the thread that spawned
them (`PR_SET_PDEATHSIG`), so spawn from a thread that outlives the run (the
main thread, normally).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from ktstr.errors import KtstrError, SystemError_
from ktstr.work.report import WorkerReport
from ktstr.workload.config import WorkloadConfig
from ktstr.workload.signals import Gate, SharedBlock, StopFlag
from ktstr.workload.worker import (
    READY,
    SETUP_FAILED,
    WorkerProc,
    WorkerSpec,
    fork_leader,
    fork_worker,
)

log = logging.getLogger(__name__)


def _pump(procs: Iterable[WorkerProc], done: Callable[[WorkerProc], bool],
          deadline: float | None) -> list[WorkerProc]:
    """Read the workers' pipes until `done(p)` for all, or the monotonic `deadline`.

    Returns the workers for which `done` still does not hold.
    """
    waiting = {p.fd: p for p in procs if not done(p)}
    poller = select.poll()
    for fd in waiting:
        poller.register(fd, select.POLLIN)
    while waiting:
        timeout_ms = None if deadline is None else max(0.0, (deadline - time.monotonic()) * 1e3)
        events = poller.poll(timeout_ms)
        if not events:
            break  # deadline passed
        for fd, _ in events:
            p = waiting[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                p.buf += chunk
            else:
                p.eof = True
            if done(p):
                poller.unregister(fd)
                del waiting[fd]
    return list(waiting.values())


def _killpg(pid: int) -> None:
    # ProcessLookupError: the group is gone; PermissionError: pid reused by a foreign group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _exit_text(status: int | None) -> str:
    if status is None:
        return "still running"
    code = os.waitstatus_to_exitcode(status)
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"


class WorkloadHandle:
    """The workers of one `WorkloadConfig`, usually all in one cgroup."""

    #: Seconds `spawn` waits for every worker to say ready.
    READY_TIMEOUT_S: ClassVar[float] = 30.0
    #: Seconds a worker has, after the stop request, to send its report.
    STOP_GRACE_S: ClassVar[float] = 5.0

    def __init__(self, cfg: WorkloadConfig, *, cgroup_dir: Path | None = None,
                 group_idx: int = 0) -> None:
        """Prepare a handle; nothing is forked until `spawn`/`launch`."""
        self.cfg = cfg
        self.cgroup_dir = None if cgroup_dir is None else Path(cgroup_dir)
        self.group_idx = group_idx
        self._procs: list[WorkerProc] = []
        self._block: SharedBlock | None = None
        self._start: Gate | None = None
        self._stop: StopFlag | None = None
        self._started = False
        self._reports: list[WorkerReport] | None = None

    @classmethod
    def spawn(cls, cfg: WorkloadConfig, *, cgroup_dir: Path | None = None,
              group_idx: int = 0, start: bool = False,
              ready_timeout: float | None = None) -> WorkloadHandle:
        """Fork `cfg.workers` workers, placed and ready but waiting for `start()`."""
        handle = cls(cfg, cgroup_dir=cgroup_dir, group_idx=group_idx)
        try:
            handle.launch(ready_timeout)
            if start:
                handle.start()
        except BaseException:
            handle.kill()
            raise
        return handle

    @property
    def pids(self) -> list[int]:
        """The workers' task ids, in spawn order: their pids, or their threads' tids
        in thread mode (each is a /proc/<tid> and a sched_setaffinity target)."""
        return [p.tid for p in self._procs]

    @property
    def leader_pids(self) -> list[int]:
        """The worker processes (thread-group leaders), each once: one per worker when
        forking, the one leader in thread mode."""
        return list(dict.fromkeys(p.pid for p in self._procs))

    def launch(self, ready_timeout: float | None = None) -> None:
        """Fork the workers and wait until each is ready; raise its set-up error if not."""
        if self._block is not None:
            raise KtstrError("this WorkloadHandle was already launched; hint: spawn a new one")
        self.cfg.require_resolved()  # an AffinityIntent is refused before any fork
        self._block = block = SharedBlock(self.cfg.workers)
        self._start = start = Gate()
        self._stop = stop = StopFlag(block, Gate())
        specs = [WorkerSpec(i, self.cfg, self.cgroup_dir, self.group_idx, start, stop, block)
                 for i in range(self.cfg.workers)]
        if self.cfg.threaded:
            self._procs.extend(fork_leader(specs))  # each thread records its own tid
        else:
            for spec in specs:
                self._procs.append(fork_worker(spec))
                block.set_pid(spec.index, self._procs[-1].pid)
        timeout = self.READY_TIMEOUT_S if ready_timeout is None else ready_timeout
        late = {p.index for p in _pump(self._procs, lambda p: p.eof or p.buf[:1] == READY,
                                     time.monotonic() + timeout)}
        for p in self._procs:
            if p.buf[:1] == SETUP_FAILED:
                raise self._setup_error(p)
        for p in self._procs:
            if p.buf[:1] != READY:
                self._reap([p])
                why = (f"did not say ready within {timeout:g}s of its fork" if p.index in late
                       else f"exited ({_exit_text(p.status)}) before saying ready")
                raise SystemError_(
                    f"worker {p.index} (pid {p.pid}) of {self._where()} {why}; hint: check "
                    "the guest log for OOM kills or a blocked cgroup write")
        if self.cfg.threaded:
            tids = block.pids()
            for p in self._procs:
                p.tid = tids[p.index]
        log.debug("spawned %d %s workers in %s: %s", self.cfg.workers, self.cfg.work.name,
                  self._where(), self.pids)

    def start(self) -> None:
        """Let every worker begin its work (idempotent)."""
        if self._start is None:
            raise KtstrError("start() before launch(); hint: use WorkloadHandle.spawn(...)")
        if not self._started and self._reports is None:
            self._started = True
            self._start.open()

    def stop_and_collect(self, *, grace: float | None = None) -> list[WorkerReport]:
        """Stop all workers, reap them and return one report per worker, in spawn order.

        A worker that has not sent its report `grace` seconds (default
        `STOP_GRACE_S`) after the stop request is killed with its process group;
        its report then carries only `error`. Calling again returns the same reports.
        """
        if self._reports is not None:
            return list(self._reports)
        grace = self.STOP_GRACE_S if grace is None else grace
        if self._stop is not None and self._start is not None:
            self._stop.set()
            self._start.open()  # a never-started worker wakes, sees stop, reports zero work
        late = _pump(self._procs, lambda p: p.eof, time.monotonic() + grace)
        for p in late:
            _killpg(p.pid)
        _pump(late, lambda p: p.eof, time.monotonic() + self.STOP_GRACE_S)
        killed = {p.pid for p in late}
        self._reap(self._procs)
        self._reports = [self._report(p, killed=p.pid in killed, grace=grace)
                         for p in self._procs]
        self._release()
        return list(self._reports)

    def kill(self) -> None:
        """SIGKILL every worker's process group and reap them; idempotent."""
        if self._reports is not None:
            return
        self._reap(self._procs)
        self._reports = [
            WorkerReport(tid=p.tid, group_idx=self.group_idx, work_type=self.cfg.work.name,
                         error="killed before its report was collected")
            for p in self._procs]
        self._release()

    def __enter__(self) -> WorkloadHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill()

    def __repr__(self) -> str:
        state = "collected" if self._reports is not None else (
            "running" if self._started else "ready")
        return (f"WorkloadHandle({self.cfg.workers}x {self.cfg.work.name} in {self._where()}, "
                f"{state}, pids={self.pids})")

    # -- internals -----------------------------------------------------------------

    def _where(self) -> str:
        return str(self.cgroup_dir) if self.cgroup_dir is not None else "the parent's cgroup"

    def _reap(self, procs: Iterable[WorkerProc]) -> None:
        """SIGKILL each worker's group (while the pid is still ours), then waitpid it.

        Threads of one leader share its pid: the leader is killed and reaped once,
        and its status is every thread's.
        """
        procs = list(procs)
        for p in procs:
            if p.status is None:
                _killpg(p.pid)  # grandchildren too; an exited worker is a zombie: pid held
        reaped = {q.pid: q.status for q in self._procs if q.status is not None}
        for p in procs:
            if p.status is None and p.pid in reaped:
                p.status = reaped[p.pid]
            elif p.status is None:
                try:
                    _, p.status = os.waitpid(p.pid, 0)
                except ChildProcessError:  # SIGCHLD ignored: the kernel reaped it for us
                    p.status = 0
                reaped[p.pid] = p.status

    def _release(self) -> None:
        for p in self._procs:
            if p.fd >= 0:
                os.close(p.fd)
                p.fd = -1
        if self._start is not None:
            self._start.close()
        if self._stop is not None:
            self._stop.close()
        if self._block is not None:
            self._block.close()

    def _setup_error(self, p: WorkerProc) -> BaseException:
        _pump([p], lambda q: q.eof, time.monotonic() + self.STOP_GRACE_S)
        err: object
        try:
            import pickle  # the error path only; start-up pays for every import

            err = pickle.loads(bytes(p.buf[1:]))  # our own child's bytes
        except Exception as exc:
            err = SystemError_(f"unreadable set-up error ({exc})")
        if not isinstance(err, BaseException):
            err = SystemError_(f"set-up failed: {err!r}")
        err.add_note(f"in worker {p.index} (pid {p.pid}) of {self._where()}, before it "
                     "started work")
        return err

    def _report(self, p: WorkerProc, *, killed: bool, grace: float) -> WorkerReport:
        if p.buf[:1] == READY and len(p.buf) > 1:
            try:
                return WorkerReport.from_dict(json.loads(bytes(p.buf[1:])))
            except (ValueError, TypeError) as exc:
                why = f"sent an unreadable report ({exc})"
        elif killed:
            why = (f"did not stop within {grace:g}s of the stop request; its process group "
                   "was killed (SIGKILL)")
        else:
            why = f"exited ({_exit_text(p.status)}) without a report"
        return WorkerReport(tid=p.tid, group_idx=self.group_idx, work_type=self.cfg.work.name,
                            error=f"worker {p.index} (task {p.tid}) {why}")
