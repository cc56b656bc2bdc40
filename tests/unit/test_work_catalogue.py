"""The catalogue's kernel-path work types, run as real forked workers on this host.

Each run lasts a few tenths of a second; where the kernel keeps its own count of
what a type is meant to do (processes forked, minor faults, nice, bytes
written, migrations), the test reads that count rather than trusting the
worker's. Construction and validation are tested without forking.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from procs import run_workers

from ktstr import work
from ktstr.errors import ConfigError, SystemError_
from ktstr.work import WorkType
from ktstr.work.pairing import SLOTS, PairArena
from ktstr.workload import WorkerReport, WorkloadConfig, WorkloadHandle

NEW_TYPES = ("FutexPingPong", "PipeIo", "ForkExit", "AffinityChurn", "IdleChurn",
             "NiceSweep", "PageFaultChurn", "CachePressure", "IoSyncWrite")


def _stat_field(pid: int, field: int) -> int:
    """Field `field` (1-based, as in proc(5)) of /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[field - 3])


def _processes_forked() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("processes "):
            return int(line.split()[1])
    raise AssertionError("no 'processes' line in /proc/stat")


def _run(w: WorkType, secs: float = 0.5, workers: int = 2,
         during: Callable[[list[int]], None] | None = None) -> list[WorkerReport]:
    """Run `workers` workers of `w` for `secs`; `during(pids)` is called mid-run."""
    reports = run_workers(w, workers, secs, during=during)
    assert all(r.work_units > 0 and r.iterations > 0 for r in reports), reports
    return reports

# -- names, defaults, validation -----------------------------------------------------


@pytest.mark.parametrize("name", NEW_TYPES)
def test_each_new_type_is_registered_and_built_by_name(name: str) -> None:
    assert WorkType.ALL_NAMES.count(name) == 1
    built = WorkType.from_name(name)
    assert built.name == name
    assert built == getattr(work, name)()


def test_defaults_and_equality_ignore_shared_state() -> None:
    assert work.FutexPingPong() == work.FutexPingPong(1024)
    assert work.FutexPingPong(0) != work.FutexPingPong(1)
    assert hash(work.FutexPingPong(7)) == hash(work.FutexPingPong(7))
    assert work.PageFaultChurn() == work.PageFaultChurn(4096, 64, 1024)
    assert work.CachePressure() == work.CachePressure(32, 64)
    assert work.IdleChurn() == work.IdleChurn(0.0002, 0.001)
    assert repr(work.FutexPingPong(3)) == "FutexPingPong(spin_iters=3)"
    assert work.FutexPingPong().group_size == 2 and work.PipeIo().group_size == 2
    assert work.ForkExit().group_size is None and work.AffinityChurn().group_size is None


@pytest.mark.parametrize(("build", "message"), [
    (lambda: work.FutexPingPong(-1),
     "FutexPingPong spin_iters = -1 is not an integer >= 0; hint: pass an integer of at least 0"),
    (lambda: work.AffinityChurn(True),
     "AffinityChurn spin_iters = True is not an integer >= 0; hint: pass an integer of at "
     "least 0"),
    (lambda: work.PageFaultChurn(region_kib=0),
     "PageFaultChurn region_kib = 0 is not a positive integer; hint: pass an integer of at "
     "least 1"),
    (lambda: work.PageFaultChurn(region_kib=2),
     "PageFaultChurn region_kib = 2 is smaller than one 4 KiB page; hint: use region_kib >= 4"),
    (lambda: work.PageFaultChurn(touches_per_cycle=1.5),  # type: ignore[arg-type]
     "PageFaultChurn touches_per_cycle = 1.5 is not a positive integer; hint: pass an integer "
     "of at least 1"),
    (lambda: work.CachePressure(stride=0),
     "CachePressure stride = 0 is not a positive integer; hint: pass an integer of at least 1"),
    (lambda: work.CachePressure(size_kib=1, stride=2048),
     "CachePressure stride = 2048 is larger than the buffer (1 KiB = 1024 bytes); hint: use a "
     "stride of at most size_kib * 1024, e.g. 64 (one cache line)"),
    (lambda: work.IdleChurn(sleep=0),
     "IdleChurn sleep = 0 is not a positive duration; hint: give a time greater than zero in "
     "seconds, e.g. 0.05 for 50 ms"),
    (lambda: WorkloadConfig(workers=3, work=work.FutexPingPong()),
     "FutexPingPong pairs workers in groups of 2 but workers = 3; hint: use a multiple of 2"),
])
def test_bad_parameters_raise_config_error_naming_the_value(
        build: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert str(info.value) == message


# -- the pairing arena ----------------------------------------------------------------


def test_pair_arena_pairs_by_key_and_reuses_freed_slots() -> None:
    arena = PairArena()
    a0 = arena.claim(11)
    b0 = arena.claim(22)
    a1 = arena.claim(11)
    assert (a0.slot, a0.role) == (0, 0)
    assert (b0.slot, b0.role) == (1, 0)  # another key: its own slot
    assert (a1.slot, a1.role, a1.generation) == (0, 1, a0.generation)
    assert arena.claim(11).slot == 2  # slot 0 is full: a new pair opens
    arena.release(a0)
    assert arena.claim(33).slot == 3  # slot 0 still has role 1
    arena.release(a1)
    again = arena.claim(44)
    assert (again.slot, again.role, again.generation) == (0, 0, a0.generation + 1)


def test_pair_arena_full_raises() -> None:
    arena = PairArena()
    for key in range(1, SLOTS + 1):
        arena.claim(key)
    with pytest.raises(SystemError_, match=f"all {SLOTS} pair slots"):
        arena.claim(SLOTS + 1)


# -- real runs ------------------------------------------------------------------------


@pytest.mark.parametrize("w", [work.FutexPingPong(256), work.PipeIo()], ids=lambda w: w.name)
def test_paired_types_take_turns_and_time_each_wakeup(w: WorkType) -> None:
    leftovers = {p.name for p in Path("/tmp").glob("ktstr-pipeio-*")}
    a, b = _run(w)
    # Strict turn-taking: neither partner can get more than one turn ahead.
    assert abs(a.work_units - b.work_units) <= 1
    for r in (a, b):
        lat = r.wake_latency_us
        assert lat.count > 0
        assert 0 < lat.p50 <= lat.p90 <= lat.p99 <= lat.max
        assert r.voluntary_csw > 0  # the partner's turn is spent asleep
    assert {p.name for p in Path("/tmp").glob("ktstr-pipeio-*")} <= leftovers


def test_fork_exit_forks_one_process_per_work_unit() -> None:
    before = _processes_forked()
    reports = _run(work.ForkExit())
    assert _processes_forked() - before >= sum(r.work_units for r in reports)


def test_affinity_churn_migrates_between_cpus() -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two allowed CPUs")
    for r in _run(work.AffinityChurn(64), secs=0.3):
        assert r.migration_count > 0
        assert len(r.cpus_used) >= 2


def test_idle_churn_sleeps_between_bursts() -> None:
    for r in _run(work.IdleChurn(0.0002, 0.001), secs=0.4):
        assert r.wake_latency_us.count > 0
        assert r.voluntary_csw >= r.wake_latency_us.count // 2
        assert r.off_cpu_pct > 25.0


def test_nice_sweep_changes_the_workers_nice() -> None:
    seen: set[int] = set()

    def sample(pids: list[int]) -> None:
        for _ in range(50):
            seen.update(_stat_field(pid, 19) for pid in pids)
            time.sleep(0.002)

    _run(work.NiceSweep(), secs=0.4, during=sample)
    assert len(seen) >= 5
    if os.geteuid() == 0:
        assert min(seen) < 0  # CAP_SYS_NICE: negative levels are part of the sweep


def test_page_fault_churn_faults_once_per_touched_page() -> None:
    faults: list[int] = []

    def sample(pids: list[int]) -> None:
        first = _stat_field(pids[0], 10)  # minflt
        time.sleep(0.1)
        faults.append(_stat_field(pids[0], 10) - first)

    # One page, one touch per cycle: every cycle is exactly one minor fault.
    reports = _run(work.PageFaultChurn(4, 1, 0), secs=0.5, workers=1, during=sample)
    assert 20 <= faults[0] <= reports[0].work_units


def test_cache_pressure_runs_strided_passes() -> None:
    for r in _run(work.CachePressure(64, 64), secs=0.3):
        assert r.work_units == r.iterations


def test_io_sync_write_writes_one_block_per_work_unit() -> None:
    written: list[int] = []

    def sample(pids: list[int]) -> None:
        def wchar() -> int:
            for line in Path(f"/proc/{pids[0]}/io").read_text().splitlines():
                if line.startswith("wchar:"):
                    return int(line.split()[1])
            raise AssertionError("no wchar in /proc/<pid>/io")

        # Until the first write lands: a synchronous write to a busy disk can take longer
        # than any fixed window (seen with other processes writing heavily).
        first = wchar()
        deadline = time.monotonic() + 1.5
        while (delta := wchar() - first) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        written.append(delta)

    leftovers = set(Path("/tmp").glob("ktstr-iosync-*"))
    reports = _run(work.IoSyncWrite(), secs=1.0, workers=1, during=sample)
    assert written[0] > 0 and written[0] % 4096 == 0
    assert written[0] // 4096 <= reports[0].work_units
    assert set(Path("/tmp").glob("ktstr-iosync-*")) <= leftovers  # unlinked at once


def test_one_paired_instance_in_two_cgroups_pairs_inside_each() -> None:
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    root = next((Path(m[1]) for m in mounts if m[2] == "cgroup2"), None)
    if root is None or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup2 mount")
    cg = root / f"ktstr-test-pairs-{os.getpid()}"
    cg.mkdir()
    try:
        shared = work.FutexPingPong(64)
        cfg = WorkloadConfig(workers=2, work=shared)
        with WorkloadHandle.spawn(cfg) as outside, \
                WorkloadHandle.spawn(cfg, cgroup_dir=cg) as inside:
            outside.start()
            inside.start()
            time.sleep(0.3)
            inside_reports = inside.stop_and_collect()
            time.sleep(0.1)  # the outside pair goes on alone: no partner was taken away
            outside_reports = outside.stop_and_collect()
    finally:
        cg.rmdir()
    for a, b in (inside_reports, outside_reports):
        assert a.error == b.error == ""
        assert abs(a.work_units - b.work_units) <= 1
        assert a.work_units > 0
