"""The one fork function for workers, and what a worker does until it exits.

`fork_worker(spec)` forks one worker and returns its `WorkerProc` (pid and the
read end of its report pipe). The child, in order:

1. `setpgid(0, 0)` (teardown SIGKILLs the whole group, so anything the worker
   spawns dies with it) and `PR_SET_PDEATHSIG(SIGKILL)` (no worker outlives the
   thread that forked it); `gc.freeze()` + `gc.disable()` so no collector pass
   touches the parent's pages or shows up as a scheduling gap.
2. joins its cgroup (writes its pid to `<cgroup_dir>/cgroup.procs`), sets nice,
   affinity, comm and policy;
3. writes `R` on the pipe (ready) or, when step 2 failed, `E` + the pickled
   exception, which the parent re-raises;
4. blocks on the start gate, runs its work type, writes its `WorkerReport` as
   JSON and closes the pipe by exiting.

Everything runs inside `try/finally: os._exit(...)`: a worker never returns
into the parent's code (pytest, the scenario) and never runs its atexit hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError, SystemError_
from ktstr.system import fs
from ktstr.work import Custom, WorkerCtx, WorkLoop
from ktstr.workload.config import WorkloadConfig
from ktstr.workload.libc import set_comm, set_pdeathsig
from ktstr.workload.report import WorkerReport
from ktstr.workload.signals import Gate, SharedBlock, StopFlag
from ktstr.workload.telemetry import Counters, own_cgroup, wake_latency

READY = b"R"
SETUP_FAILED = b"E"

EXIT_OK = 0
EXIT_SETUP_FAILED = 3
EXIT_ORPHANED = 4
EXIT_INTERNAL = 70  # an exception escaped the worker's own handling


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything one worker needs, captured before the fork."""

    index: int
    cfg: WorkloadConfig
    cgroup_dir: Path | None
    group_idx: int
    start: Gate
    stop: StopFlag
    block: SharedBlock


@dataclass(slots=True)
class WorkerProc:
    """The parent's view of one worker: pid, report pipe, bytes read so far."""

    pid: int
    index: int
    fd: int
    buf: bytearray = field(default_factory=bytearray)
    eof: bool = False
    status: int | None = None  # waitpid status once reaped


def fork_worker(spec: WorkerSpec) -> WorkerProc:
    """Fork one worker; it reports on a pipe whose read end the parent keeps."""
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = EXIT_INTERNAL
        try:
            os.close(rfd)
            code = _child_main(spec, wfd, parent)
        finally:
            os._exit(code)
    os.close(wfd)
    # Also here: no window where a killpg misses the worker. OSError: it already did.
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    return WorkerProc(pid, spec.index, rfd)


def _child_main(spec: WorkerSpec, wfd: int, parent: int) -> int:
    os.setpgid(0, 0)
    set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
        return EXIT_ORPHANED
    gc.freeze()
    gc.disable()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # the parent's Python handlers are not ours
    try:
        _setup(spec)
    except BaseException as exc:
        _send(wfd, SETUP_FAILED + _pickle_error(exc))
        return EXIT_SETUP_FAILED
    _send(wfd, READY)
    spec.start.wait()
    try:
        report = _run(spec)
    except Exception as exc:  # our own telemetry failed: still answer with a report
        report = WorkerReport(tid=os.getpid(), group_idx=spec.group_idx,
                              work_type=spec.cfg.work.name,
                              error=describe_exception(exc, "worker"))
    _send(wfd, json.dumps(report.to_dict()).encode())
    return EXIT_OK


def _setup(spec: WorkerSpec) -> None:
    """Place the worker: cgroup, nice, affinity, comm, policy (before any work)."""
    cfg = spec.cfg
    if spec.cgroup_dir is not None:
        fs.write_text(spec.cgroup_dir / "cgroup.procs", str(os.getpid()))
    if cfg.nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, cfg.nice)
        except OSError as err:
            raise ConfigError(f"cannot set nice {cfg.nice} for worker {os.getpid()}: "
                              f"{err.strerror}; hint: negative nice needs CAP_SYS_NICE") from err
    if cfg.affinity is not None:
        try:
            os.sched_setaffinity(0, cfg.affinity)
        except OSError as err:
            cpus = ",".join(map(str, sorted(cfg.affinity)))
            raise ConfigError(
                f"cannot pin worker {os.getpid()} to cpus {cpus} ({err.strerror}): none of "
                "them is online and allowed by its cpuset; hint: pick CPUs from the "
                "cgroup's cpuset.cpus.effective") from err
    if cfg.pcomm is not None:
        set_comm(cfg.pcomm)
    if cfg.policy is not None:
        cfg.policy.apply(0)  # type: ignore[attr-defined]  # checked by WorkloadConfig


def _pickle_error(exc: BaseException) -> bytes:
    import pickle  # the error path only; start-up pays for every import

    try:
        return pickle.dumps(exc)
    except Exception:
        return pickle.dumps(SystemError_(f"{type(exc).__name__}: {exc}"))


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def describe_exception(exc: BaseException, what: str) -> str:
    """`what raised Type: message (at file:line in func)`, for `WorkerReport.error`."""
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    return f"{what} raised {type(exc).__name__}: {exc}{where}"


def _run(spec: WorkerSpec) -> WorkerReport:
    """Run the work type from the start barrier to the stop; build the report."""
    work = spec.cfg.work
    pid = os.getpid()
    base = WorkerReport(tid=pid, group_idx=spec.group_idx, cgroup=own_cgroup(),
                        work_type=work.name)
    if isinstance(work, Custom):
        return _run_custom(spec, work, base)
    before = Counters.read()
    loop = WorkLoop(spec.stop, seed=pid)
    loop.begin()
    error = ""
    try:
        work.run(loop)
    except Exception as exc:
        error = describe_exception(exc, f"{work.name} work")
    loop.finish()
    used = Counters.read() - before
    return dataclasses.replace(
        base,
        work_units=loop.work_units,
        iterations=loop.iterations,
        cpu_time_ns=used.cpu_ns,
        wall_time_ns=loop.wall_ns,
        run_delay_ns=used.run_delay_ns,
        migration_count=used.migrations,
        cpus_used=frozenset(loop.cpus),
        max_gap_ms=loop.max_gap_ns / 1e6,
        max_gap_cpu=loop.max_gap_cpu,
        max_gap_at_ms=loop.max_gap_at_ns / 1e6,
        wake_latency_us=wake_latency(loop.wake_overshoot_ns, loop.wake_count),
        voluntary_csw=used.voluntary_csw,
        involuntary_csw=used.involuntary_csw,
        error=error,
        metrics=dict(loop.metrics),
        notes=list(loop.notes),
    )


_DEFAULT_REPORT = WorkerReport()


def _run_custom(spec: WorkerSpec, work: Custom, base: WorkerReport) -> WorkerReport:
    """Call the user's function; fill what it left at the defaults with our figures."""
    pid = os.getpid()
    wctx = WorkerCtx(
        stop=spec.stop,
        cpus=frozenset(os.sched_getaffinity(0)),
        sibling_pids=tuple(p for p in spec.block.pids() if p not in (0, pid)),
        cgroup_dir=spec.cgroup_dir,
        cfg=work.cfg,
        index=spec.index,
        group_idx=spec.group_idx,
    )
    before = Counters.read()
    t0 = time.monotonic_ns()
    error = ""
    out = _DEFAULT_REPORT
    try:
        result = work.fn(wctx)
        if isinstance(result, WorkerReport):
            out = result
        else:
            error = (f"Custom work {work.name!r} returned {type(result).__name__}, not a "
                     "WorkerReport; hint: return WorkerReport(work_units=..., ...)")
    except Exception as exc:
        error = describe_exception(exc, f"Custom work {work.name!r}")
    wall = time.monotonic_ns() - t0
    used = Counters.read() - before
    ours: dict[str, Any] = {
        "tid": base.tid, "group_idx": base.group_idx, "cgroup": base.cgroup,
        "work_type": base.work_type, "cpu_time_ns": used.cpu_ns, "wall_time_ns": wall,
        "run_delay_ns": used.run_delay_ns, "migration_count": used.migrations,
        "voluntary_csw": used.voluntary_csw, "involuntary_csw": used.involuntary_csw,
        "error": error,
    }
    fill = {k: v for k, v in ours.items() if getattr(out, k) == getattr(_DEFAULT_REPORT, k)}
    return dataclasses.replace(out, **fill)
