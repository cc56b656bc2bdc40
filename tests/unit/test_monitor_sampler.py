"""The sampling thread and the vCPU clocks (monitor/sampler.py, monitor/vcpus.py)."""

from __future__ import annotations

import itertools
import os
import threading
import time

from ktstr.monitor.sample import CpuSample, MonitorSample
from ktstr.monitor.sampler import MonitorThread
from ktstr.monitor.vcpus import VcpuClock
from ktstr.vm.qemu import vcpu_threads


class Looks:
    """A reader stand-in: stamps its own index and host time, as RqReader does."""

    def __init__(self) -> None:
        self.index = 0

    def __call__(self) -> MonitorSample:
        self.index += 1
        return look(self.index - 1, time.monotonic())


def look(index: int, t: float) -> MonitorSample:
    cpus = tuple(CpuSample(cpu=c, nr_running=1, clock_ns=index * 100, scx_nr_running=0,
                           local_dsq_depth=0, curr_pid=1, curr_comm="x") for c in range(2))
    return MonitorSample(index=index, t=t, jiffies=index, attached=False, cpus=cpus)


def test_samples_come_every_period_after_the_start_delay_with_vcpu_times() -> None:
    began = time.monotonic()
    mon = MonitorThread(Looks(), lambda: {0: 5, 1: 7}, period=0.02, start_delay=0.1).start()
    time.sleep(0.35)
    samples = mon.stop()
    assert 3 <= len(samples) <= 14, len(samples)
    assert samples[0].t - began >= 0.1
    assert [s.index for s in samples] == list(range(len(samples)))
    gaps = [b.t - a.t for a, b in itertools.pairwise(samples)]
    assert min(gaps) > 0.005, gaps  # paced, not back to back
    assert [c.vcpu_cpu_ns for c in samples[0].cpus] == [5, 7]
    assert mon.error is None and len(mon.sample_cost_s) == len(samples)


def test_a_failing_reader_ends_the_series_with_its_reason() -> None:
    looks = Looks()

    def flaky() -> MonitorSample:
        if looks.index == 3:
            raise OSError("guest memory unmapped")
        return looks()

    mon = MonitorThread(flaky, period=0.01, start_delay=0.0).start()
    time.sleep(0.2)
    assert len(mon.stop()) == 3
    assert mon.error == "OSError: guest memory unmapped"


def test_stop_during_the_start_delay_takes_no_sample() -> None:
    mon = MonitorThread(Looks(), period=0.01, start_delay=5.0).start()
    assert mon.stop() == []


def test_the_reader_is_prepared_on_the_thread_and_its_failure_is_kept() -> None:
    mon = MonitorThread(prepare=Looks, period=0.01, start_delay=0.0).start()
    time.sleep(0.1)
    assert len(mon.stop()) >= 2 and mon.error is None

    def unavailable() -> Looks:
        raise ValueError("no vmcoreinfo in guest memory")

    mon = MonitorThread(prepare=unavailable, period=0.01, start_delay=0.0).start()
    time.sleep(0.05)
    assert mon.stop() == [] and mon.error == "ValueError: no vmcoreinfo in guest memory"


def test_vcpu_threads_from_query_cpus_fast() -> None:
    reply = [{"cpu-index": 0, "thread-id": 101, "qom-path": "/machine/unattached/device[0]"},
             {"cpu-index": 1, "thread-id": 102, "qom-path": "/machine/unattached/device[1]"}]
    assert vcpu_threads(lambda cmd: reply if cmd == "query-cpus-fast" else None) == {
        0: 101, 1: 102}


def test_vcpu_clock_reads_real_thread_cpu_time_and_skips_a_gone_thread() -> None:
    spin_until = time.monotonic() + 0.2
    while time.monotonic() < spin_until:
        pass
    clock = VcpuClock(os.getpid(), {0: threading.get_native_id(), 1: 2**22 + 12345})
    first = clock.read()
    assert set(first) == {0} and first[0] > 0  # ns; how many depends on the host load
    spin_until = time.monotonic() + 0.05
    while time.monotonic() < spin_until:
        pass
    assert clock.read()[0] > first[0]
