"""Schbench/Taobench: validation, defaults, name lookup, schbench's histogram, short runs."""

import threading
import time

import pytest

from ktstr.errors import ConfigError
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop
from ktstr.work.schbench import (
    SCHBENCH_OPERATIONS,
    SCHBENCH_SLEEP_USEC,
    Schbench,
    SchbenchConfig,
    Stats,
    auto_scale,
    plat_idx_to_val,
    plat_val_to_idx,
)
from ktstr.work.taobench import TAOBENCH_GET_PCT, Taobench, TaobenchConfig


class _StopAfter:
    def __init__(self, secs: float) -> None:
        self.t = time.monotonic() + secs

    def is_set(self) -> bool:
        return time.monotonic() > self.t

    def wait(self, timeout: float | None = None) -> bool:
        time.sleep(timeout or 0)
        return self.is_set()


def _run(work: WorkType, secs: float = 1.0) -> WorkLoop:
    loop = WorkLoop(_StopAfter(secs))
    loop.begin()
    work.run(loop)
    loop.finish()
    return loop


def test_defaults_are_schbench_flags():
    c = SchbenchConfig()
    assert (c.message_threads, c.worker_threads, c.operations, c.sleep_usec) == (
        1, 0, SCHBENCH_OPERATIONS, SCHBENCH_SLEEP_USEC)
    assert (c.no_locking, c.rps, c.auto_rps, c.pipe) == (False, 0, 0, 0)
    assert (c.cache_footprint_kb, c.matrix_size) == (256, 104)  # schbench's -F 256
    assert c.workers_per_message(4) == 4
    assert SchbenchConfig(message_threads=3).workers_per_message(4) == 2
    assert SchbenchConfig(worker_threads=7).workers_per_message(4) == 7


@pytest.mark.parametrize("kw", [dict(message_threads=0), dict(worker_threads=-1),
                                dict(cache_footprint_kb=0), dict(sleep_usec=-5),
                                dict(no_locking=1), dict(auto_rps=101), dict(pipe=2 << 20),
                                dict(pipe=64, rps=10), dict(rps=True)])
def test_bad_config_is_refused_with_the_flag(kw):
    with pytest.raises(ConfigError, match="SchbenchConfig"):
        SchbenchConfig(**kw)


def test_from_name_and_single_worker():
    s = WorkType.from_name("Schbench")
    assert isinstance(s, Schbench) and s.config == SchbenchConfig() and s.group_size is None
    t = WorkType.from_name("Taobench")
    assert isinstance(t, Taobench) and t.config.get_pct == TAOBENCH_GET_PCT
    with pytest.raises(ConfigError):
        Schbench(config=TaobenchConfig())  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [dict(get_pct=101), dict(keys=0), dict(zipf_s=-1),
                                dict(shards=0), dict(value_bytes=0)])
def test_taobench_bad_config(kw):
    with pytest.raises(ConfigError, match="TaobenchConfig"):
        TaobenchConfig(**kw)


def test_histogram_matches_schbench_buckets():
    assert [plat_val_to_idx(v) for v in (0, 1, 511)] == [0, 1, 511]
    for v in (512, 1000, 12345, 10**6):
        back = plat_idx_to_val(plat_val_to_idx(v))
        assert abs(back - v) / v < 1 / 128, (v, back)  # 256 buckets per power of two
    s = Stats()
    for v in range(1, 101):
        s.add(v)
    assert s.percentiles((50.0, 90.0, 99.0)) == [50, 90, 99]
    assert (s.min, s.max, s.nr_samples) == (1, 100, 100)
    m = s.metrics("wakeup_latency", (50.0, 99.0))
    assert m == {"wakeup_latency_pct50.0": 50.0, "wakeup_latency_pct99.0": 99.0,
                 "wakeup_latency_min": 1.0, "wakeup_latency_max": 100.0}
    other = Stats()
    other.add(1000)
    s.combine(other)
    assert s.max == 1000 and s.nr_samples == 101


def test_auto_scale_moves_towards_target():
    assert auto_scale(100, 10.0, 50) == 300  # far below: capped at x3
    assert auto_scale(100, 90.0, 50) < 100
    assert auto_scale(100, 50.0, 50) == 100


def test_schbench_run_reports_schbench_figures():
    loop = _run(Schbench(SchbenchConfig(worker_threads=2, cache_footprint_kb=4, operations=1)))
    m = loop.metrics
    assert m["requests"] > 0 and m["rps"] > 0 and loop.work_units == m["requests"]
    assert m["wakeup_latency_pct50.0"] <= m["wakeup_latency_pct99.0"] <= m["wakeup_latency_max"]
    assert m["request_latency_pct50.0"] <= m["request_latency_pct99.0"]
    assert m["request_latency_min"] >= 100  # the 100 us think sleep is inside every request
    assert loop.wake_count > 0 and m["thread_voluntary_csw"] > 0
    assert threading.active_count() == 1, "every schbench thread was joined"


def test_schbench_rps_and_pipe_modes():
    m = _run(Schbench(SchbenchConfig(worker_threads=2, cache_footprint_kb=4, operations=1,
                                     rps=50))).metrics
    assert 0 < m["requests"] <= 110  # 50 per second: at t=0 and at t=1 s, at most
    m = _run(Schbench(SchbenchConfig(worker_threads=2, pipe=4096)), 0.5).metrics
    assert m["transfer_ops"] > 0 and "request_latency_pct50.0" not in m


def test_taobench_run_reports_taobench_figures():
    loop = _run(Taobench(TaobenchConfig(fast_threads=1, slow_threads=1, clients=2, keys=1000,
                                        cache_items=100, miss_latency_us=200)))
    m = loop.metrics
    assert m["total_qps"] > 0 and abs(m["total_qps"] - m["fast_qps"] - m["slow_qps"]) < 1e-6
    assert 0 < m["hit_rate"] < 1  # 100 of 1000 keys fit: some hits, some misses
    assert m["miss_latency_p50_us"] >= 200 and m["latency_p50_us"] <= m["latency_p99_us"]
    assert loop.wake_count > 0
    m = _run(Taobench(TaobenchConfig(get_pct=0, fast_threads=1, slow_threads=1, clients=1)),
             0.3).metrics
    assert m["get_qps"] == 0 and m["set_qps"] > 0 and m["slow_qps"] == 0
