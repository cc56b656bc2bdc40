"""`Schbench(SchbenchConfig)`: schbench's default mode, natively, inside one worker.

schbench (Chris Mason's scheduler benchmark) models a request-serving
application: *message threads* batch-wake *worker threads*; a woken worker
measures its **wakeup latency** (message thread's time stamp to running), then
serves one request: it think-sleeps (`usleep(-s)`, "simulated networking" that
also hands it a fresh time slice), then does `-n` naive matrix multiplications
sized by the cache footprint `-F` under a **per-CPU lock** (taken for the CPU it
runs on, dropped and retaken if it migrated meanwhile). Think time plus matrix
work is the **request latency**; requests completed per second is the **RPS**.
The worker then posts its message thread and sleeps on its futex until woken again.

One ktstr worker runs the whole thread topology (`message_threads` message
threads, each with `worker_threads` workers): the parallelism is threads of
this one process, as in schbench, so use `workers=1`. The worker's main thread
only supervises: it samples RPS once a second (schbench's `rps` histogram),
drives `-A` auto-RPS, keeps `work_units` = requests served, and at the end puts
the figures in `loop.metrics` under schbench's JSON names
(`wakeup_latency_pct50.0`, `request_latency_pct99.0`, `rps_pct50.0`, ...,
`*_min`, `*_max`, in µs / requests per second) plus `rps` (requests over the
whole run / wall time), `requests`, schbench's `sched delay` line
(`sched_delay_message_us`, `sched_delay_worker_us`: average run-queue delay per
run from each thread's `/proc/thread-self/schedstat`) and the kernel's count of
voluntary context switches of all those threads (`thread_voluntary_csw`), and
`native_math` (1 when the multiply ran in C). The wakeup latencies also become
the worker's `wake_latency_us`.

CLI parity (schbench flag -> field):

| flag | field | schbench default | ktstr default |
|---|---|---|---|
| -m | message_threads | 1 | 1 |
| -t | worker_threads | 0 = CPUs / -m | 0 = CPUs the worker may use / -m |
| -F | cache_footprint_kb | 256 | 256 |
| -n | operations | 5 | 5 |
| -s | sleep_usec | 100 | 100 |
| -L | no_locking | off | False |
| -R | rps | 0 (off) | 0 |
| -A | auto_rps | 0 (off) | 0 |
| -p | pipe | 0 (off) | 0 |

ktstr's topology and the cgroup's cpuset set what schbench's `-M/-W/-P`
pinning and `get_nprocs()` would: `worker_threads=0` counts the CPUs of the
worker's affinity mask, and the per-CPU locks cover every possible CPU.
`-r/-w/-i/-z/-j` have no field: the run lasts the test's duration, figures are
for the whole run.

Differences a reader must know: the matrix multiply is schbench's C loop,
statement for statement, in `ktstr._native` (src/ktstr/_native.c, compiled
by `make venv`'s `pip install -e .`); it releases the interpreter lock, so
workers multiply in parallel as schbench's threads do. Only the multiply is
native: the rest of a request (futex waits, think sleep, lock, time stamps)
is Python, a few tens of µs natively. Where the extension was not built the
multiply runs in Python (about 40-70x slower, serialised by the interpreter
lock, bench/schbench_math.py): the result then says so in a note and
`native_math` = 0, and a smaller `cache_footprint_kb` keeps requests short.
A per-CPU lock is a blocking `threading.Lock` rather than schbench's trylock
spin (a spin under the interpreter lock would starve the holder it waits for).
Futex words are process-private (`FUTEX_WAIT_PRIVATE`/`FUTEX_WAKE_PRIVATE`), as in schbench.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from operator import mul

from ktstr.errors import ConfigError
from ktstr.system.fs import SysIoError
from ktstr.system.libc import Timespec, syscall
from ktstr.system.proc import cpu_times, task_schedstat, task_status
from ktstr.validators import count, is_int
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop, sched_getcpu
from ktstr.work.wake import futex_nr

_native_math: Callable[[array[int], int, int], None] | None
try:  # built by `pip install -e .` (make venv) from src/ktstr/_native.c
    from ktstr._native import schbench_math as _native_math
except ImportError:
    _native_math = None

#: schbench's -m: message threads.
SCHBENCH_MESSAGE_THREADS = 1
#: schbench's -t: workers per message thread; 0 = the worker's CPUs / message threads.
SCHBENCH_WORKER_THREADS = 0
#: schbench's -F in KiB: 3 matrices of 104x104 uint64.
SCHBENCH_CACHE_FOOTPRINT_KB = 256
#: schbench's -n: matrix multiplications per request.
SCHBENCH_OPERATIONS = 5
#: schbench's -s: think-time sleep per request, µs.
SCHBENCH_SLEEP_USEC = 100
#: schbench's -R: requests per second (0: the default message/worker ping-pong).
SCHBENCH_RPS = 0
#: schbench's -A: target CPU busy percentage for auto-RPS (0: off).
SCHBENCH_AUTO_RPS = 0
#: schbench's -p: bytes a pipe-mode wake transfers (0: off); schbench caps it at 1 MiB.
SCHBENCH_PIPE = 0
PIPE_TRANSFER_BUFFER = 1 << 20
#: Longest futex sleep before a thread re-checks the stop flag, seconds.
WAIT_SLICE_S = 0.05
#: Requests a worker may have queued in -R mode before the RPS thread skips it.
RPS_BATCH = 128
#: Wakeup-latency samples fed to the WorkLoop (its reservoir size).
MAX_LOOP_SAMPLES = 10_000

FUTEX_BLOCKED = 0
FUTEX_RUNNING = 1
_FUTEX_WAIT_PRIVATE = 0 | 128
_FUTEX_WAKE_PRIVATE = 1 | 128


# -- schbench's latency histogram (fio's "plat" buckets) ----------------------------

PLAT_BITS = 8
PLAT_VAL = 1 << PLAT_BITS
PLAT_GROUP_NR = 19
PLAT_NR = PLAT_GROUP_NR * PLAT_VAL


def plat_val_to_idx(val: int) -> int:
    """The histogram bucket of `val`: exact below 512, then 256 buckets per power of 2."""
    msb = val.bit_length() - 1 if val > 0 else 0
    if msb <= PLAT_BITS:
        return val
    error_bits = msb - PLAT_BITS
    idx = ((error_bits + 1) << PLAT_BITS) + ((PLAT_VAL - 1) & (val >> error_bits))
    return idx if idx < PLAT_NR - 1 else PLAT_NR - 1


def plat_idx_to_val(idx: int) -> int:
    """The value a bucket stands for: itself when exact, else the middle of its range."""
    if idx < (PLAT_VAL << 1):
        return idx
    error_bits = (idx >> PLAT_BITS) - 1
    base = 1 << (error_bits + PLAT_BITS)
    return int(base + ((idx % PLAT_VAL) + 0.5) * (1 << error_bits))


class Stats:
    """schbench's `struct stats`: a bucket histogram plus min/max/count, per thread.

    One per thread, so recording needs no lock; `combine` folds them at the end.
    Recording a sample is a bucket increment, no allocation beyond the int.
    """

    __slots__ = ("max", "min", "nr_samples", "plat")

    def __init__(self) -> None:
        self.plat = [0] * PLAT_NR
        self.nr_samples = 0
        self.max = 0
        self.min = 0

    def add(self, val: int) -> None:
        if val > self.max:
            self.max = val
        if self.min == 0 or val < self.min:
            self.min = val
        self.plat[plat_val_to_idx(val)] += 1
        self.nr_samples += 1

    def combine(self, other: Stats) -> None:
        plat = self.plat
        for i, n in enumerate(other.plat):
            if n:
                plat[i] += n
        self.nr_samples += other.nr_samples
        self.max = max(self.max, other.max)
        if self.min == 0 or (other.min and other.min < self.min):
            self.min = other.min

    def percentiles(self, pcts: tuple[float, ...]) -> list[int]:
        """Bucket values at each percentile, as schbench's `calc_percentiles` finds them."""
        out: list[int] = []
        if not self.nr_samples:
            return [0] * len(pcts)
        total = 0
        j = 0
        for i, n in enumerate(self.plat):
            total += n
            while j < len(pcts) and total >= pcts[j] / 100.0 * self.nr_samples:
                out.append(plat_idx_to_val(i))
                j += 1
            if j == len(pcts):
                break
        return out

    def metrics(self, label: str, pcts: tuple[float, ...]) -> dict[str, float]:
        """`{label}_pct50.0`, ..., `{label}_min`, `{label}_max`: schbench's JSON keys."""
        got = {f"{label}_pct{p:.1f}": float(v) for p, v in zip(pcts, self.percentiles(pcts),
                                                               strict=True)}
        got[f"{label}_min"] = float(self.min)
        got[f"{label}_max"] = float(self.max)
        return got

    def feed(self, loop: WorkLoop, limit: int = MAX_LOOP_SAMPLES) -> None:
        """Give the loop this histogram's samples (µs) as wake-to-run samples, at most
        `limit` of them in proportion, and the true count as `wake_count`."""
        if not self.nr_samples:
            return
        scale = min(1.0, limit / self.nr_samples)
        for i, n in enumerate(self.plat):
            for _ in range(round(n * scale)):
                loop.resume_after_wait(plat_idx_to_val(i) * 1000)
        loop.wake_count = max(loop.wake_count, self.nr_samples)


#: The percentiles schbench prints for latencies and for RPS.
LAT_PCTS = (50.0, 90.0, 99.0, 99.9)
RPS_PCTS = (20.0, 50.0, 90.0)


# -- futex words between threads ---------------------------------------------------


class Futex:
    """One private futex word with schbench's `fpost`/`fwait` protocol.

    Only the waiter turns RUNNING into BLOCKED and only posters turn BLOCKED
    into RUNNING, so the check-then-store pairs need no compare-and-swap: a
    race leaves at worst one spurious wakeup, never a lost one (the kernel
    re-checks the word under its lock before sleeping).
    """

    __slots__ = ("_addr", "_nr", "_ts", "word")

    def __init__(self) -> None:
        self.word = ctypes.c_int32(FUTEX_BLOCKED)
        self._addr = ctypes.c_void_p(ctypes.addressof(self.word))
        self._nr = ctypes.c_long(futex_nr())
        sec = int(WAIT_SLICE_S)
        self._ts = ctypes.byref(Timespec(sec, int((WAIT_SLICE_S - sec) * 1e9)))

    def post(self) -> None:
        """Wake the waiter if it is blocked (schbench's `fpost`)."""
        if self.word.value == FUTEX_BLOCKED:
            self.word.value = FUTEX_RUNNING
            syscall(self._nr, self._addr, _FUTEX_WAKE_PRIVATE, 1, None, None, 0)

    def wait(self, stopping: threading.Event) -> None:
        """Sleep until posted (schbench's `fwait`), or until `stopping` is set."""
        word = self.word
        while True:
            if word.value == FUTEX_RUNNING:
                word.value = FUTEX_BLOCKED
                return
            if stopping.is_set():
                return
            syscall(self._nr, self._addr, _FUTEX_WAIT_PRIVATE, FUTEX_BLOCKED, self._ts,
                    None, 0)


def thread_schedstat() -> tuple[int, int, int]:
    """The calling thread's (on-CPU ns, run-queue delay ns, runs) from the kernel."""
    try:
        return task_schedstat("thread-self")
    except SysIoError:  # no CONFIG_SCHEDSTATS/CONFIG_SCHED_INFO
        return 0, 0, 0


def thread_voluntary_csw() -> int:
    """The calling thread's voluntary context switches, from /proc/thread-self/status."""
    try:
        return int(task_status("thread-self").get("voluntary_ctxt_switches", "0"))
    except (SysIoError, ValueError):
        return 0


# -- configuration -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, init=False)
class SchbenchConfig:
    """schbench's command line as fields; see the module docstring for the flag table."""

    message_threads: int
    worker_threads: int
    cache_footprint_kb: int
    operations: int
    sleep_usec: int
    no_locking: bool
    rps: int
    auto_rps: int
    pipe: int

    def __init__(self, message_threads: int = SCHBENCH_MESSAGE_THREADS,
                 worker_threads: int = SCHBENCH_WORKER_THREADS,
                 cache_footprint_kb: int = SCHBENCH_CACHE_FOOTPRINT_KB,
                 operations: int = SCHBENCH_OPERATIONS, sleep_usec: int = SCHBENCH_SLEEP_USEC,
                 no_locking: bool = False, rps: int = SCHBENCH_RPS,
                 auto_rps: int = SCHBENCH_AUTO_RPS, pipe: int = SCHBENCH_PIPE) -> None:
        put = object.__setattr__
        put(self, "message_threads", count(message_threads, "SchbenchConfig message_threads (-m)"))
        put(self, "worker_threads",
            count(worker_threads, "SchbenchConfig worker_threads (-t; 0 = per CPU)", 0))
        put(self, "cache_footprint_kb",
            count(cache_footprint_kb, "SchbenchConfig cache_footprint_kb (-F)"))
        put(self, "operations", count(operations, "SchbenchConfig operations (-n)", 0))
        put(self, "sleep_usec", count(sleep_usec, "SchbenchConfig sleep_usec (-s)", 0))
        if not isinstance(no_locking, bool):
            raise ConfigError(f"SchbenchConfig no_locking (-L) = {no_locking!r} is not a bool; "
                              "hint: pass True to skip the per-CPU lock")
        put(self, "no_locking", no_locking)
        put(self, "rps", count(rps, "SchbenchConfig rps (-R; 0 = off)", 0))
        if not is_int(auto_rps) or not 0 <= auto_rps <= 100:
            raise ConfigError(f"SchbenchConfig auto_rps (-A) = {auto_rps!r} is not a busy "
                              "percentage; hint: pass 0 (off) or 1..100")
        put(self, "auto_rps", auto_rps)
        put(self, "pipe", count(pipe, "SchbenchConfig pipe (-p; 0 = off)", 0))
        if pipe > PIPE_TRANSFER_BUFFER:
            raise ConfigError(f"SchbenchConfig pipe (-p) = {pipe} is above schbench's "
                              f"{PIPE_TRANSFER_BUFFER} bytes; hint: use at most 1 MiB")
        if pipe and (rps or auto_rps):
            raise ConfigError("SchbenchConfig pipe (-p) with rps/auto_rps: pipe mode has no "
                              "requests; hint: use one mode")

    @property
    def matrix_size(self) -> int:
        """Side of each of the three matrices: sqrt(F KiB / 3 / 8 bytes), as schbench."""
        return max(1, int(math.sqrt(self.cache_footprint_kb * 1024 / 3 / 8)))

    def workers_per_message(self, cpus: int) -> int:
        """-t, or schbench's default: the CPUs shared out over the message threads."""
        if self.worker_threads:
            return self.worker_threads
        return max(1, (cpus + self.message_threads - 1) // self.message_threads)


# -- the run -----------------------------------------------------------------------


class Matrices:
    """schbench's `thread_data->data`: m1, m2 and m3, n x n uint64 each, in one buffer.

    `multiply` is schbench's `do_some_math` `reps` times. It runs in C
    (ktstr._native, built at install time) with the interpreter lock released,
    so workers multiply in parallel and at schbench's rate; when the extension
    is missing (a tree installed without a compiler) the same product is
    computed in Python over row lists, about 40-70x slower and serialised by
    the interpreter lock: `native` says which one runs.
    """

    __slots__ = ("_rows", "data", "n", "native")

    def __init__(self, n: int, native: bool | None = None) -> None:
        if native is None:
            native = _native_math is not None
        if native and _native_math is None:
            raise ConfigError("Matrices native=True but ktstr._native is not built; "
                              "hint: run `make venv` (needs gcc and python3-dev)")
        self.n = n
        self.native = native
        nn = n * n
        self.data = array("Q", bytes(8 * 3 * nn))
        for x in range(nn):
            i, j = divmod(x, n)
            self.data[x] = (i * n + j) % 7 + 1
            self.data[nn + x] = (i * n + j) % 5 + 1
        self._rows: tuple[list[list[int]], list[list[int]], list[list[int]]] | None = None
        if not native:  # m1 by rows, m2 by columns (transposed), m3 by rows
            d = self.data
            self._rows = ([list(d[i * n:(i + 1) * n]) for i in range(n)],
                          [list(d[nn + j:2 * nn:n]) for j in range(n)],
                          [[0] * n for _ in range(n)])

    def multiply(self, reps: int, stopping: threading.Event | None = None) -> None:
        """`reps` products; the Python path gives up between rows once `stopping` is set
        (one 256 KiB request takes seconds under TCG, longer than a worker may take
        to stop); the C one is over in milliseconds."""
        if self._rows is None:
            assert _native_math is not None
            _native_math(self.data, self.n, reps)
            return
        m1, m2t, m3 = self._rows
        for _ in range(reps):
            for i, row in enumerate(m1):
                if stopping is not None and stopping.is_set():
                    return
                out = m3[i]
                for j, col in enumerate(m2t):
                    out[j] = sum(map(mul, row, col))

    def product(self) -> list[int]:
        """m3, row-major, as the last `multiply` left it (for tests)."""
        if self._rows is None:
            return list(self.data[2 * self.n * self.n:])
        return [v & 0xFFFF_FFFF_FFFF_FFFF for row in self._rows[2] for v in row]


class _Thread:
    """schbench's `struct thread_data` for one worker or message thread."""

    __slots__ = (
        "csw",
        "futex",
        "loop_count",
        "matrices",
        "msg",
        "pending",
        "pipe_page",
        "request_stats",
        "requests",
        "sched_delay_ns",
        "wake_ns",
        "wakeup_stats",
    )

    def __init__(self, msg: _Thread | None, n: int, pipe: int) -> None:
        self.msg = msg
        self.futex = Futex()
        self.wake_ns = 0  # the waker's stamp, set just before it posts us
        self.wakeup_stats = Stats()
        self.request_stats = Stats()
        self.loop_count = 0
        self.pending = 0
        self.requests: deque[int] = deque()  # -R mode: request start times
        self.pipe_page = (ctypes.c_char * max(1, pipe))()
        self.sched_delay_ns = 0
        self.csw = 0
        if n:
            self.matrices = Matrices(n)

    def finish_kernel_stats(self) -> None:
        _, delay, pcount = thread_schedstat()
        self.sched_delay_ns = delay // pcount if pcount else 0
        self.csw = thread_voluntary_csw()


class _SchbenchThreads:
    """One schbench run: the threads, the shared stop flag and the per-CPU locks."""

    def __init__(self, cfg: SchbenchConfig, cpus: int) -> None:
        self.cfg = cfg
        self.stopping = threading.Event()
        rps = cfg.rps or (10 if cfg.auto_rps else 0)  # -A starts from 10 RPS, as schbench
        self.requests_per_sec = max(1, rps // cfg.message_threads) if rps else 0
        self.locks = [threading.Lock() for _ in range(os.cpu_count() or 1)]
        self.n = 0 if cfg.pipe else cfg.matrix_size
        self.per_msg = cfg.workers_per_message(cpus)
        self.msgs: list[_Thread] = []
        self.workers: list[list[_Thread]] = []
        for _ in range(cfg.message_threads):
            msg = _Thread(None, 0, 0)
            self.msgs.append(msg)
            self.workers.append([_Thread(msg, self.n, cfg.pipe) for _ in range(self.per_msg)])
        self.queue: list[deque[_Thread]] = [deque() for _ in self.msgs]
        self.threads: list[threading.Thread] = []

    # -- worker side -------------------------------------------------------------

    def lock_this_cpu(self) -> threading.Lock:
        locks = self.locks
        while True:
            cpu = sched_getcpu()
            lock = locks[cpu % len(locks)]
            lock.acquire()
            if sched_getcpu() == cpu:
                return lock
            lock.release()  # got it but migrated: take the new CPU's lock instead

    def msg_and_wait(self, td: _Thread, qi: int) -> int:
        """Post our message thread and sleep until it wakes us, recording the wakeup;
        how many requests to serve now (-R mode: those queued for us, taken at once
        without sleeping when there are some; default mode: 1 after each wakeup)."""
        cfg = self.cfg
        if cfg.pipe:
            ctypes.memset(td.pipe_page, 2, cfg.pipe)
        td.futex.word.value = FUTEX_BLOCKED
        if self.requests_per_sec:
            td.pending = 0
            queued = len(td.requests)
            if queued:
                for _ in range(queued):
                    td.requests.popleft()
                td.futex.word.value = FUTEX_RUNNING
                return queued
        else:
            self.queue[qi].append(td)
        msg = td.msg
        assert msg is not None
        msg.futex.post()
        if self.stopping.is_set():
            return 0
        td.futex.wait(self.stopping)
        delta = (time.monotonic_ns() - td.wake_ns) // 1000
        if delta > 0 and not self.stopping.is_set():
            td.wakeup_stats.add(delta)
        return 0 if self.requests_per_sec or self.stopping.is_set() else 1

    def worker_thread(self, td: _Thread, qi: int) -> None:
        cfg = self.cfg
        sleep_s = cfg.sleep_usec / 1e6
        ops = cfg.operations
        try:
            while not self.stopping.is_set():
                for _ in range(self.msg_and_wait(td, qi)):
                    work_start = time.monotonic_ns()
                    if not cfg.pipe:
                        if sleep_s:  # simulated networking, and a fresh time slice
                            time.sleep(sleep_s)
                        lock = None if cfg.no_locking else self.lock_this_cpu()
                        td.matrices.multiply(ops, self.stopping)
                        if lock is not None:
                            lock.release()
                    now = time.monotonic_ns()
                    td.loop_count += 1
                    if not cfg.pipe:
                        td.request_stats.add(max(1, (now - work_start) // 1000))
        finally:
            td.finish_kernel_stats()

    # -- message side ------------------------------------------------------------

    def wake_all(self, qi: int) -> None:
        """Wake every worker queued on message thread `qi`, stamped with one clock read."""
        q = self.queue[qi]
        now = time.monotonic_ns()
        pipe = self.cfg.pipe
        while True:
            try:
                td = q.popleft()
            except IndexError:
                return
            if pipe:
                ctypes.memset(td.pipe_page, 1, pipe)
                td.wake_ns = time.monotonic_ns()
            else:
                td.wake_ns = now
            td.futex.post()

    def message_thread(self, qi: int) -> None:
        td = self.msgs[qi]
        try:
            if self.requests_per_sec:
                self.rps_thread(qi)
                return
            while True:
                td.futex.word.value = FUTEX_BLOCKED
                self.wake_all(qi)
                if self.stopping.is_set():
                    self.wake_all(qi)
                    break
                td.futex.wait(self.stopping)
        finally:
            for w in self.workers[qi]:
                w.futex.post()
            td.finish_kernel_stats()

    def rps_thread(self, qi: int) -> None:
        """-R: each second, queue `requests_per_sec` requests round-robin and post."""
        workers = self.workers[qi]
        cur = 0
        stopping = self.stopping
        while not stopping.is_set():
            start = time.monotonic_ns()
            for _ in range(self.requests_per_sec):
                if stopping.is_set():
                    break
                w = workers[cur % len(workers)]
                cur += 1
                if w.pending > RPS_BATCH:
                    time.sleep(100e-6)
                    continue
                w.pending += 1
                now = time.monotonic_ns()
                w.requests.append(now)
                w.wake_ns = now
                w.futex.post()
            left = 1.0 - (time.monotonic_ns() - start) / 1e9
            if left > 0:
                stopping.wait(left)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        for qi in range(len(self.msgs)):
            for w in self.workers[qi]:
                self.threads.append(threading.Thread(
                    target=self.worker_thread, args=(w, qi), name="schbench-worker",
                    daemon=True))
            self.threads.append(threading.Thread(
                target=self.message_thread, args=(qi,), name="schbench-msg", daemon=True))
        for t in self.threads:
            t.start()

    def stop(self) -> list[str]:
        """Stop and join every thread; names of threads that did not finish in time."""
        self.stopping.set()
        for qi, msg in enumerate(self.msgs):
            msg.futex.post()
            for w in self.workers[qi]:
                w.futex.post()
        deadline = time.monotonic() + 10.0
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def loops(self) -> int:
        return sum(w.loop_count for ws in self.workers for w in ws)


def read_busy(prev: list[int]) -> float | None:
    """Non-idle share of all CPUs since the last call (/proc/stat), in percent."""
    vals = cpu_times()
    total, idle = sum(vals), vals[3]
    if not prev:
        prev[:] = [total, idle]
        return None
    dt, di = total - prev[0], idle - prev[1]
    prev[:] = [total, idle]
    return 100.0 - 100.0 * di / dt if dt > 0 else None


def auto_scale(rps: int, busy: float, target: int) -> int:
    """schbench's `auto_scale_rps` step: grow or shrink RPS towards `target`% busy."""
    if busy <= 0:
        return max(1, rps * 3)
    delta = target / busy
    if busy < target:
        if delta > 3:
            delta = 3
        elif delta < 1.2:
            delta = 1 + (delta - 1) / 8
        elif delta < 1.5:
            delta = 1 + (delta - 1) / 4
        return math.ceil(rps * delta)
    if busy > target:
        if delta < 0.3:
            delta = 0.3
        elif delta > 0.9:
            delta += (1 - delta) / 8
        elif delta > 0.8:
            delta += (1 - delta) / 4
        return max(0, math.floor(rps * delta))
    return rps


@dataclass(frozen=True, slots=True, init=False)
class Schbench(WorkType):
    """schbench's message/worker thread topology inside one worker; see the module doc."""

    config: SchbenchConfig

    def __init__(self, config: SchbenchConfig | None = None) -> None:
        if config is None:
            config = SchbenchConfig()
        if not isinstance(config, SchbenchConfig):
            raise ConfigError(f"Schbench config = {config!r} is not a SchbenchConfig; "
                              "hint: pass work.SchbenchConfig(message_threads=..., ...)")
        object.__setattr__(self, "config", config)

    def run(self, loop: WorkLoop) -> None:
        cfg = self.config
        run = _SchbenchThreads(cfg, len(os.sched_getaffinity(0)))
        rps_stats = Stats()
        busy_prev: list[int] = []
        run.start()
        t0 = last = time.monotonic_ns()
        last_loops = 0
        try:
            while loop.running:
                time.sleep(WAIT_SLICE_S)
                loop.resume_after_wait()  # supervising, not wanting the CPU
                now = time.monotonic_ns()
                loops = run.loops()
                loop.work_units = loop.iterations = loops
                if now - last >= 1_000_000_000:  # schbench's once-a-second RPS sample
                    if not cfg.pipe:
                        rps_stats.add(round((loops - last_loops) * 1e9 / (now - last)))
                    last, last_loops = now, loops
                    if cfg.auto_rps:
                        busy = read_busy(busy_prev)
                        if busy is not None:
                            run.requests_per_sec = auto_scale(run.requests_per_sec, busy,
                                                              cfg.auto_rps)
        finally:
            stuck = run.stop()
        wall = (time.monotonic_ns() - t0) / 1e9
        if stuck:
            loop.note(f"Schbench: {len(stuck)} threads did not stop within 10 s")
        self._report(loop, run, rps_stats, wall)

    @staticmethod
    def _report(loop: WorkLoop, run: _SchbenchThreads, rps_stats: Stats, wall: float) -> None:
        cfg = run.cfg
        wakeup, request = Stats(), Stats()
        workers = [w for ws in run.workers for w in ws]
        for w in workers:
            wakeup.combine(w.wakeup_stats)
            request.combine(w.request_stats)
        loops = run.loops()
        loop.work_units = loop.iterations = loops
        m = loop.metrics
        m.update(wakeup.metrics("wakeup_latency", LAT_PCTS))
        if not cfg.pipe:
            m.update(request.metrics("request_latency", LAT_PCTS))
            if rps_stats.nr_samples:
                m.update(rps_stats.metrics("rps", RPS_PCTS))
        m["rps" if not cfg.pipe else "transfer_ops"] = loops / wall if wall > 0 else 0.0
        if cfg.pipe:
            m["transfer_bytes_per_s"] = loops * cfg.pipe / wall if wall > 0 else 0.0
        m["requests"] = float(loops)
        m["message_threads"] = float(cfg.message_threads)
        m["worker_threads"] = float(run.per_msg)
        m["matrix_size"] = float(run.n)
        m["native_math"] = 1.0 if _native_math is not None else 0.0
        if run.n and _native_math is None:
            loop.note("Schbench: ktstr._native is not built (`make venv` builds it; needs gcc "
                      "and python3-dev): the matrix multiply ran in Python, ~50x slower and "
                      "serialised by the interpreter lock")
        m["sched_delay_message_us"] = (
            sum(t.sched_delay_ns for t in run.msgs) / len(run.msgs) / 1e3)
        m["sched_delay_worker_us"] = sum(t.sched_delay_ns for t in workers) / len(workers) / 1e3
        m["thread_voluntary_csw"] = float(sum(t.csw for t in (*run.msgs, *workers)))
        if cfg.auto_rps or cfg.rps:
            m["requests_per_sec_target"] = float(run.requests_per_sec * cfg.message_threads)
        if thread_schedstat() == (0, 0, 0):
            loop.note("Schbench: no /proc/thread-self/schedstat (CONFIG_SCHEDSTATS/"
                      "CONFIG_SCHED_INFO off): sched_delay_* are 0")
        wakeup.feed(loop)
