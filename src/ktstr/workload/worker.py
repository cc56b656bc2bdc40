"""The one fork function for workers, and what a worker does until it exits.

`fork_worker(spec)` forks one worker and returns its `WorkerProc` (pid and the
read end of its report pipe). The child, in order:

1. `setpgid(0, 0)` (teardown SIGKILLs the whole group, so anything the worker
   spawns dies with it) and `PR_SET_PDEATHSIG(SIGKILL)` (no worker outlives the
   thread that forked it); `gc.freeze()` + `gc.disable()` so no collector pass
   touches the parent's pages or shows up as a scheduling gap.
2. takes its comm, joins its cgroup (writes its pid to `<cgroup_dir>/cgroup.procs`),
   sets nice, affinity and policy;
3. writes `R` on the pipe (ready) or, when step 2 failed, `E` + the pickled
   exception, which the parent re-raises;
4. blocks on the start gate, runs its work type, writes its `WorkerReport` as
   JSON and closes the pipe by exiting.

Everything runs inside `try/finally: os._exit(...)`: a worker never returns
into the parent's code (pytest, the scenario) and never runs its atexit hooks.

Thread mode (`cfg.threaded`: `CloneMode.THREAD` or a `pcomm`): `fork_leader(specs)`
forks ONE leader process that does step 1 once, names itself `pcomm` and joins
the cgroup for all (a cgroup2 holds whole processes, so the leader's move takes
every thread with it); then it starts one thread per worker, each with its own
report pipe. Each thread sets its own nice, affinity and policy (all per-task
attributes in Linux), records its tid in the shared pid table, says ready, runs
its work type and sends its own `WorkerReport`, whose counters are that thread's
(`/proc/<pid>/task/<tid>/schedstat` and `sched`, `getrusage(RUSAGE_THREAD)`).
The leader joins its threads and exits; teardown SIGKILLs its process group as
for forked workers, so a thread that ignores the stop request dies with it.

The threads share one interpreter and its GIL: only one of them executes Python
bytecode at a time, and a thread that wants the GIL blocks on a futex until the
holder drops it (every 5 ms, `sys.getswitchinterval()`, or when it blocks in a
system call). So N CPU-bound worker threads get about one CPU between them, and
each shows voluntary context switches and gaps of a few switch intervals; work
that blocks (sleeps, futex waits, pipes, I/O) releases the GIL and overlaps
freely. It is still the shape schedulers expect from real applications: one
thread group, one leader, N kernel tasks that the scheduler places, balances and
preempts one by one (and that sched_ext schedulers may group by tgid or comm).
Work types that deliver Python signal handlers (only the main thread runs them)
need FORK mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError, SystemError_
from ktstr.system import fs, proc
from ktstr.system.libc import set_comm, set_pdeathsig
from ktstr.system.proc import task_cgroup
from ktstr.work import Custom, WorkerCtx, WorkLoop
from ktstr.work.report import WorkerReport
from ktstr.workload.config import WorkloadConfig
from ktstr.workload.signals import Gate, SharedBlock, StopFlag
from ktstr.workload.telemetry import Counters, wake_latency

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
    tid: int = 0  # the worker's task id: its pid, or its thread's tid once ready (0 before)

    def __post_init__(self) -> None:
        if not self.tid:
            self.tid = self.pid


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


def fork_leader(specs: list[WorkerSpec]) -> list[WorkerProc]:
    """Fork one leader hosting every spec as a thread; one `WorkerProc` (own pipe) each.

    All returned procs share the leader's pid; their `tid` is 0 until the
    thread has said ready (the parent reads it from the shared pid table).
    """
    pipes = [os.pipe2(os.O_CLOEXEC) for _ in specs]
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = EXIT_INTERNAL
        try:
            for rfd, _ in pipes:
                os.close(rfd)
            code = _leader_main(specs, [wfd for _, wfd in pipes], parent)
        finally:
            os._exit(code)
    for _, wfd in pipes:
        os.close(wfd)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)
    procs = [WorkerProc(pid, spec.index, rfd) for spec, (rfd, _) in zip(specs, pipes, strict=True)]
    for p in procs:
        p.tid = 0
    return procs


def _become_worker(parent: int) -> bool:
    """Step 1 of the module docstring; False when the parent is already gone."""
    os.setpgid(0, 0)
    set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
        return False
    gc.freeze()
    gc.disable()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # the parent's Python handlers are not ours
    return True


def _leader_main(specs: list[WorkerSpec], wfds: list[int], parent: int) -> int:
    """The leader: join the cgroup, take the pcomm, run one thread per worker, wait."""
    if not _become_worker(parent):
        return EXIT_ORPHANED
    cfg = specs[0].cfg
    try:
        # The name first: nothing in the cgroup is ever seen under the interpreter's
        # name, and the threads started below inherit it.
        if cfg.pcomm is not None:
            set_comm(cfg.pcomm)
        if specs[0].cgroup_dir is not None:
            fs.write_text(specs[0].cgroup_dir / "cgroup.procs", str(os.getpid()))
    except BaseException as exc:
        _send(wfds[0], SETUP_FAILED + _pickle_error(exc))
        return EXIT_SETUP_FAILED
    threads = [threading.Thread(target=_thread_main, args=(spec, wfd), daemon=True,
                                name=f"ktstr-worker-{spec.index}")
               for spec, wfd in zip(specs, wfds, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return EXIT_OK


def _thread_main(spec: WorkerSpec, wfd: int) -> None:
    """One worker thread: place itself, say ready, run, report; never raises."""
    try:
        tid = threading.get_native_id()
        spec.block.set_pid(spec.index, tid)
        try:
            _setup_task(spec.cfg, spec.index, tid)
        except BaseException as exc:
            _send(wfd, SETUP_FAILED + _pickle_error(exc))
            return
        _send(wfd, READY)
        spec.start.wait()
        pid = os.getpid()
        try:
            report = _run(spec, tid, lambda: _thread_counters(pid, tid))
        except Exception as exc:
            report = WorkerReport(tid=tid, group_idx=spec.group_idx,
                                  work_type=spec.cfg.work.name,
                                  error=describe_exception(exc, "worker thread"))
        _send(wfd, json.dumps(report.to_dict()).encode())
    except BaseException:  # the parent sees EOF without a report and says so
        pass
    finally:
        os.close(wfd)


def _thread_counters(pid: int, tid: int) -> Counters:
    """`Counters.read` for one thread: its own schedstat, sched and rusage."""
    task_root = proc.PROC_ROOT / str(pid) / "task"
    run_ns, wait_ns, _ = proc.task_schedstat(tid, root=task_root)
    migrations = int(proc.task_sched(tid, root=task_root).get("se.nr_migrations", 0))
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return Counters(run_ns, wait_ns, migrations, usage.ru_nvcsw, usage.ru_nivcsw)


def _child_main(spec: WorkerSpec, wfd: int, parent: int) -> int:
    if not _become_worker(parent):
        return EXIT_ORPHANED
    try:
        _setup(spec)
    except BaseException as exc:
        _send(wfd, SETUP_FAILED + _pickle_error(exc))
        return EXIT_SETUP_FAILED
    _send(wfd, READY)
    spec.start.wait()
    try:
        report = _run(spec, os.getpid(), Counters.read)
    except Exception as exc:  # our own telemetry failed: still answer with a report
        report = WorkerReport(tid=os.getpid(), group_idx=spec.group_idx,
                              work_type=spec.cfg.work.name,
                              error=describe_exception(exc, "worker"))
    _send(wfd, json.dumps(report.to_dict()).encode())
    return EXIT_OK


def _setup(spec: WorkerSpec) -> None:
    """Place the worker: comm, cgroup, nice, affinity, policy (before any work)."""
    cfg = spec.cfg
    if cfg.pcomm is not None:  # before it joins: the cgroup never holds it unnamed
        set_comm(cfg.pcomm)
    if spec.cgroup_dir is not None:
        fs.write_text(spec.cgroup_dir / "cgroup.procs", str(os.getpid()))
    _setup_task(cfg, spec.index, os.getpid())


def _setup_task(cfg: WorkloadConfig, index: int, tid: int) -> None:
    """The per-task attributes of worker `index`, set by the calling task on itself:
    nice, affinity, policy.

    Policy comes last: a deadline task may not change its affinity afterwards.
    """
    if cfg.nice is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, cfg.nice)  # the calling thread only
        except OSError as err:
            raise ConfigError(f"cannot set nice {cfg.nice} for worker {tid}: "
                              f"{err.strerror}; hint: negative nice needs CAP_SYS_NICE") from err
    affinity = cfg.affinity_for(index)
    if affinity is not None:
        try:
            os.sched_setaffinity(0, affinity)
        except OSError as err:
            cpus = ",".join(map(str, sorted(affinity)))
            raise ConfigError(
                f"cannot pin worker {tid} to cpus {cpus} ({err.strerror}): none of "
                "them is online and allowed by its cpuset; hint: pick CPUs from the "
                "cgroup's cpuset.cpus.effective") from err
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


def _run(spec: WorkerSpec, tid: int, counters: Callable[[], Counters]) -> WorkerReport:
    """Run the work type from the start barrier to the stop; build the report.

    `tid` is the worker's task id, `counters` reads that task's kernel counters.
    """
    work = spec.cfg.work
    base = WorkerReport(tid=tid, group_idx=spec.group_idx, cgroup=task_cgroup("self"),
                        work_type=work.name)
    if isinstance(work, Custom):
        return _run_custom(spec, work, base, counters)
    before = counters()
    loop = WorkLoop(spec.stop, seed=tid)
    loop.begin()
    error = ""
    try:
        work.run(loop)
    except Exception as exc:
        error = describe_exception(exc, f"{work.name} work")
    loop.finish()
    used = counters() - before
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


def _run_custom(spec: WorkerSpec, work: Custom, base: WorkerReport,
                counters: Callable[[], Counters]) -> WorkerReport:
    """Call the user's function; fill what it left at the defaults with our figures."""
    pid = base.tid
    wctx = WorkerCtx(
        stop=spec.stop,
        cpus=frozenset(os.sched_getaffinity(0)),
        sibling_pids=tuple(p for p in spec.block.pids() if p not in (0, pid)),
        cgroup_dir=spec.cgroup_dir,
        cfg=work.cfg,
        index=spec.index,
        group_idx=spec.group_idx,
    )
    before = counters()
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
    used = counters() - before
    ours: dict[str, Any] = {
        "tid": base.tid, "group_idx": base.group_idx, "cgroup": base.cgroup,
        "work_type": base.work_type, "cpu_time_ns": used.cpu_ns, "wall_time_ns": wall,
        "run_delay_ns": used.run_delay_ns, "migration_count": used.migrations,
        "voluntary_csw": used.voluntary_csw, "involuntary_csw": used.involuntary_csw,
        "error": error,
    }
    fill = {k: v for k, v in ours.items() if getattr(out, k) == getattr(_DEFAULT_REPORT, k)}
    return dataclasses.replace(out, **fill)
