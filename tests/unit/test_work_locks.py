"""Lock, class-mismatch and producer/consumer work types: validation, defaults, the
shared mutex against real processes, and short real runs of the non-RT types."""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import time

import pytest
from procs import run_workers

from ktstr.errors import ConfigError
from ktstr.work import WorkType, locks
from ktstr.work.locks import (
    AsymmetricWaker,
    FutexLockMode,
    MutexContention,
    PriorityInversion,
    ProducerConsumerImbalance,
    SchedClass,
    SharedMutex,
)
from ktstr.work.loop import WorkLoop
from ktstr.work.wake import CACHE_PIPE_SIZE_KIB, CachePipe, PipeIo
from ktstr.workload import WorkloadConfig


class _NeverStop:
    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        if timeout:
            time.sleep(timeout)
        return False


# -- defaults, names, groups ---------------------------------------------------------

def test_defaults_are_the_seed_constants() -> None:
    m = MutexContention()
    assert (m.contenders, m.hold_iters, m.work_iters) == (4, 256, 1024)
    assert MutexContention(4, 256, 1024) == m  # the catalogue default
    p = PriorityInversion()
    assert p.mode is FutexLockMode.PI and p.hold_iters == locks.PRIORITY_INVERSION_HOLD_ITERS
    a = AsymmetricWaker()
    assert a.slow_class is SchedClass.IDLE
    assert a.spin_iters == locks.ASYMMETRIC_WAKER_SPIN_ITERS
    q = ProducerConsumerImbalance()
    assert (q.producers, q.consumers) == (locks.PRODUCERS, locks.CONSUMERS)
    assert q.produce_iters < q.consume_iters  # producers outpace consumers by default


@pytest.mark.parametrize("name", ["MutexContention", "PriorityInversion", "AsymmetricWaker",
                                  "ProducerConsumerImbalance", "CachePipe"])
def test_from_name_builds_the_default_instance(name: str) -> None:
    built = WorkType.from_name(name)
    assert built.name == name and name in WorkType.ALL_NAMES


def test_group_sizes() -> None:
    assert MutexContention(contenders=6).group_size == 6
    assert PriorityInversion().group_size == 3
    assert AsymmetricWaker().group_size == 2
    assert CachePipe().group_size == 2
    assert ProducerConsumerImbalance(producers=3, consumers=2).group_size == 5


def test_workload_config_refuses_a_worker_count_that_splits_a_group() -> None:
    with pytest.raises(ConfigError, match=r"groups of 3.*workers = 4"):
        WorkloadConfig(workers=4, work=PriorityInversion())
    with pytest.raises(ConfigError, match="groups of 4"):
        WorkloadConfig(workers=6, work=MutexContention())
    WorkloadConfig(workers=8, work=MutexContention())


def test_cache_pipe_is_a_pipe_io_with_its_own_burst() -> None:
    assert isinstance(CachePipe(), PipeIo) and CachePipe().name == "CachePipe"


@pytest.mark.parametrize(("build", "match"), [
    (lambda: MutexContention(contenders=1), "contenders = 1"),
    (lambda: MutexContention(hold_iters=-1), "hold_iters = -1"),
    (lambda: MutexContention(work_iters=True), "work_iters = True"),
    (lambda: PriorityInversion(mode="fast"), "mode = 'fast'.*FutexLockMode.PI"),
    (lambda: PriorityInversion(hold_iters=0), "hold_iters = 0"),
    (lambda: AsymmetricWaker(slow_class="fifo"), "slow_class = 'fifo'.*SchedClass.IDLE"),
    (lambda: AsymmetricWaker(spin_iters=-2), "spin_iters = -2"),
    (lambda: ProducerConsumerImbalance(producers=0), "producers = 0"),
    (lambda: ProducerConsumerImbalance(consumers=0), "consumers = 0"),
    (lambda: ProducerConsumerImbalance(burst=0), "burst = 0"),
    (lambda: ProducerConsumerImbalance(pause=0), "pause = 0"),
])
def test_bad_parameters_are_refused_by_name(build, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build()


def test_modes_and_classes_accept_their_strings() -> None:
    assert PriorityInversion(mode="plain").mode is FutexLockMode.PLAIN
    assert AsymmetricWaker(slow_class="batch").slow_class.policy == os.SCHED_BATCH
    assert SchedClass.IDLE.policy == os.SCHED_IDLE


# -- the shared mutex ----------------------------------------------------------------

def _shared_mutex(mode: FutexLockMode) -> tuple[mmap.mmap, SharedMutex]:
    mm = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    word = ctypes.c_int32.from_buffer(mm, 64)
    SharedMutex.init(ctypes.addressof(word), mode)
    return mm, SharedMutex(word)


def _child_holding(mutex: SharedMutex) -> int:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        assert mutex.try_lock()
        os.write(w, b"x")
        time.sleep(30)
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"x"
    os.close(r)
    return pid


@pytest.mark.parametrize("mode", list(FutexLockMode))
def test_mutex_excludes_another_process_and_survives_its_death(mode: FutexLockMode) -> None:
    mm, mutex = _shared_mutex(mode)
    pid = _child_holding(mutex)
    try:
        assert mutex.word.value & 0x3FFFFFFF == pid  # robust: the owner's TID is the word
        assert not mutex.try_lock()
        assert not mutex.has_waiters()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # The holder died holding it: the next locker gets EOWNERDEAD and repairs it.
    assert mutex.lock(WorkLoop(_NeverStop()))
    assert mutex.word.value & 0x3FFFFFFF == os.getpid()
    mutex.unlock()
    assert mutex.word.value == 0
    del mutex
    mm.close()


def test_a_waiter_sets_futex_waiters_and_lock_gives_up_once_stopped() -> None:
    mm, mutex = _shared_mutex(FutexLockMode.PLAIN)
    pid = _child_holding(mutex)
    stopped = {"now": False}

    class _Stop(_NeverStop):
        def is_set(self) -> bool:
            return stopped["now"]

    waiter = os.fork()
    if waiter == 0:  # pragma: no cover - child: blocks in the kernel on the word
        mutex.lock(WorkLoop(_NeverStop()))
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while not mutex.has_waiters() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mutex.has_waiters()
        stopped["now"] = True
        t0 = time.monotonic()
        assert not mutex.lock(WorkLoop(_Stop()))
        assert time.monotonic() - t0 < 1.0
    finally:
        for p in (pid, waiter):
            os.kill(p, signal.SIGKILL)
            os.waitpid(p, 0)
    del mutex
    mm.close()


# -- short real runs -----------------------------------------------------------------

def test_mutex_contention_counts_acquisitions_and_contention() -> None:
    reports = run_workers(MutexContention(contenders=4, hold_iters=2000, work_iters=200), 4)
    assert all(r.metrics["acquisitions"] == r.iterations > 0 for r in reports)
    assert sum(r.metrics["contended"] for r in reports) > 0
    assert sum(r.wake_latency_us.count for r in reports) > 0
    assert sum(r.voluntary_csw for r in reports) > 0  # futex waits are voluntary switches


def test_producer_consumer_moves_every_item_through_the_queue() -> None:
    # Two producers against one consumer of the same cost per item: 2x faster together,
    # and a pause long enough for the consumer to drain the queue even on a loaded host.
    work = ProducerConsumerImbalance(producers=2, consumers=1, produce_iters=64,
                                     consume_iters=64, burst=150, pause=0.15)
    reports = run_workers(work, 3, secs=1.0)
    prod = [r for r in reports if r.metrics["producer"] == 1.0]
    cons = [r for r in reports if r.metrics["producer"] == 0.0]
    assert len(prod) == 2 and len(cons) == 1
    produced = sum(r.metrics["produced"] for r in prod)
    consumed = cons[0].metrics["consumed"]
    # At most the queue (64 items) is left unread at the stop.
    assert 0 < consumed <= produced <= consumed + locks.QUEUE_BYTES // locks.ITEM_BYTES
    assert sum(r.metrics["queue_full_waits"] for r in prod) > 0  # bursts overflow it
    assert cons[0].metrics["queue_empty_waits"] > 0  # pauses drain it
    assert cons[0].wake_latency_us.count > 0


def test_asymmetric_waker_puts_one_side_in_the_slow_class() -> None:
    reports = run_workers(AsymmetricWaker(slow_class=SchedClass.BATCH), 2)
    assert sorted(r.metrics["sched_policy"] for r in reports) == [os.SCHED_OTHER,
                                                                  os.SCHED_BATCH]
    assert all(r.iterations > 0 for r in reports)


def test_cache_pipe_reports_its_burst_time() -> None:
    reports = run_workers(CachePipe(), 2)
    for r in reports:
        assert r.metrics["working_set_kib"] == CACHE_PIPE_SIZE_KIB
        assert r.metrics["burst_ns_mean"] > 0 and r.iterations > 0
    assert sum(r.wake_latency_us.count for r in reports) > 0
