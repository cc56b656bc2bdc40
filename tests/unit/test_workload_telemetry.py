"""Kernel counters of the calling process and wake-latency percentiles."""

from __future__ import annotations

import os
import time

from ktstr.work.report import WakeLatency
from ktstr.workload.signals import Gate, SharedBlock, StopFlag
from ktstr.workload.telemetry import Counters, percentile, wake_latency


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7], 90) == 7
    assert percentile([], 50) == 0


def test_wake_latency_in_microseconds() -> None:
    wl = wake_latency([3_000, 1_000, 2_000, 10_000], count=9)
    assert wl == WakeLatency(count=9, p50=2.0, p90=10.0, p99=10.0, max=10.0)
    assert wake_latency([], 0) == WakeLatency()


def test_counters_delta_grows_with_cpu_work() -> None:
    before = Counters.read()
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    used = Counters.read() - before
    # schedstat's on-CPU time agrees with the process CPU clock (single thread)
    assert 40_000_000 <= used.cpu_ns <= 1_000_000_000
    assert used.run_delay_ns >= 0 and used.migrations >= 0


def test_counters_count_voluntary_switches() -> None:
    before = Counters.read()
    for _ in range(3):
        time.sleep(0.001)
    assert (Counters.read() - before).voluntary_csw >= 3


def test_gate_opens_for_good() -> None:
    gate = Gate()
    try:
        assert not gate.is_open()
        assert not gate.wait(0.01)
        gate.open()
        assert gate.wait(None) and gate.wait(0) and gate.is_open()
    finally:
        gate.close()


def test_stop_flag_set_wakes_a_waiting_child_process() -> None:
    block = SharedBlock(2)
    stop = StopFlag(block, Gate())
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            t0 = time.monotonic()
            ok = stop.wait(5.0) and time.monotonic() - t0 < 4.0
        finally:
            os._exit(0 if ok else 1)
    time.sleep(0.05)
    stop.set()
    _, status = os.waitpid(pid, 0)
    stop.close()
    block.close()
    assert os.waitstatus_to_exitcode(status) == 0


def test_shared_block_pid_table() -> None:
    block = SharedBlock(3)
    block.set_pid(0, 101)
    block.set_pid(2, 303)
    assert block.pids() == (101, 0, 303)
    block.close()
