"""CPU, cache and block-I/O work types: AluHot, SmtSiblingSpin, IpcVariance, CacheYield,
IoRandRead, IoConvoy and the Sequence phases Io and AluHot.

Construction and validation without forking; then short runs as real forked
workers on this host, judged where possible by the kernel's own counters
(`/proc/<pid>/io`, context switches, the affinity mask).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from procs import run_workers

from ktstr.errors import ConfigError
from ktstr.system.mounts import mount_fstype
from ktstr.work import WorkType
from ktstr.work.compute import (
    ALU_HOT_WIDTH,
    AluHot,
    AluWidth,
    IpcVariance,
    SmtSiblingSpin,
    chain_seed,
    multiply_chains,
    smt_cores,
)
from ktstr.work.io import IO_BLOCK_BYTES, IoConvoy, IoRandRead
from ktstr.work.memory import CachePressure, CacheYield
from ktstr.work.sequence import AluHotPhase, Io, Phase, Sequence, Spin
from ktstr.workload import WorkerReport, WorkloadConfig, WorkloadHandle

#: Filesystems on a block device, where /proc/<pid>/io's read_bytes counts direct reads.
DISK_FILESYSTEMS = ("ext4", "xfs", "btrfs", "ext3", "f2fs")
NEW = ("AluHot", "SmtSiblingSpin", "IpcVariance", "CacheYield", "IoRandRead", "IoConvoy")


def _io(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/io").read_text()
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def _run(w: WorkType, secs: float = 0.6, workers: int = 2,
         during: Callable[[list[int]], None] | None = None) -> list[WorkerReport]:
    reports = run_workers(w, workers, secs, during=during)
    assert all(r.work_units > 0 for r in reports), reports
    return reports

# -- names, defaults, validation -----------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_registered_and_built_by_name(name: str) -> None:
    assert WorkType.ALL_NAMES.count(name) == 1
    assert WorkType.from_name(name).name == name


def test_defaults_are_the_catalogue_defaults() -> None:
    assert AluHot() == AluHot(AluWidth.WIDEST) == AluHot("widest")
    assert ALU_HOT_WIDTH is AluWidth.WIDEST
    assert IpcVariance() == IpcVariance(100_000, 1024, 64)
    assert CacheYield() == CacheYield(32, 64)
    assert CacheYield() != CachePressure()  # a different type, not an equal one
    assert SmtSiblingSpin().group_size == 2
    for ungrouped in (AluHot(), IpcVariance(), CacheYield(), IoRandRead(), IoConvoy()):
        assert ungrouped.group_size is None


def test_alu_width_chains_and_parsing() -> None:
    assert [w.chains for w in AluWidth] == [1, 2, 4, 8, 8]
    assert AluWidth.parse("VEC256") is AluWidth.VEC256
    with pytest.raises(ConfigError, match=r"AluHot width = 'avx2'.*AluWidth.VEC256"):
        AluHot("avx2")
    with pytest.raises(ConfigError, match="AluHot width = 4"):
        AluHot(4)  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "message"), [
    ((0, 1, 1), "IpcVariance hot_iters = 0"),
    ((1, 0, 1), "IpcVariance cold_iters = 0"),
    ((1, 1, 0), "IpcVariance period_iters = 0"),
    ((1.5, 1, 1), "IpcVariance hot_iters = 1.5"),
])
def test_ipc_variance_refuses_zero_and_non_integers(args: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IpcVariance(*args)


def test_cache_yield_errors_name_cache_yield() -> None:
    with pytest.raises(ConfigError, match="CacheYield size_kib = 0"):
        CacheYield(0)
    with pytest.raises(ConfigError, match="CacheYield stride = 2048 is larger"):
        CacheYield(1, 2048)


def test_smt_sibling_spin_needs_an_even_worker_count() -> None:
    with pytest.raises(ConfigError, match="groups of 2 but workers = 3"):
        WorkloadConfig(workers=3, work=SmtSiblingSpin())


def test_multiply_chains_are_independent_lcg_steps() -> None:
    one = multiply_chains(1)
    four = multiply_chains(4)
    seeds = chain_seed(4, 7)
    assert len(set(seeds)) == 4 and all(s & 1 for s in seeds)
    # Each of four chains advances exactly as a lone chain from the same start.
    assert four(50, seeds) == tuple(one(50, (s,))[0] for s in seeds)
    assert one(0, (5,)) == (5,)


def test_smt_cores_pairs_the_allowed_threads_of_each_core() -> None:
    topo = {0: {0, 1}, 1: {0, 1}, 2: {2, 3}, 3: {2, 3}, 4: {4}}

    def sib(cpu: int) -> frozenset[int]:
        return frozenset(topo[cpu])

    assert smt_cores(frozenset(range(5)), sib) == [(0, 1), (2, 3)]
    assert smt_cores(frozenset({0, 2, 3}), sib) == [(2, 3)]  # core 0 has one allowed thread
    assert smt_cores(frozenset({0, 2, 4}), sib) == []


def test_phases_validate_and_carry_the_seed_names() -> None:
    assert Phase.AluHot is AluHotPhase and Phase.Io is Io and Phase.Spin is Spin
    assert AluHotPhase(0.1) == AluHotPhase(0.1, AluWidth.WIDEST)
    assert AluHotPhase(0.1, "scalar").width is AluWidth.SCALAR
    with pytest.raises(ConfigError, match="Io phase"):
        Io(0)
    with pytest.raises(ConfigError, match="AluHotPhase phase"):
        AluHotPhase(-1)
    with pytest.raises(ConfigError, match="AluHot width"):
        AluHotPhase(0.1, "sse")
    seq = Sequence(Io(0.05), Phase.AluHot(0.05))
    assert [type(p).__name__ for p in seq.phases] == ["Io", "AluHotPhase"]


# -- real runs ---------------------------------------------------------------------------


def test_alu_hot_counts_its_multiplies() -> None:
    for r in _run(AluHot(AluWidth.VEC256), workers=1):
        assert r.metrics["alu_chains"] == 4
        assert r.metrics["alu_multiplies"] >= 4 * 256 * r.work_units
        assert r.voluntary_csw <= 5  # it never blocks


def test_ipc_variance_alternates_phases() -> None:
    (r,) = _run(IpcVariance(2000, 256, 4), workers=1)
    assert r.metrics["ipc_phase_pairs"] == r.work_units
    assert r.iterations == r.work_units // 4


def test_smt_sibling_spin_pins_each_pair_or_says_why() -> None:
    allowed: dict[int, set[int]] = {}

    def grab(pids: list[int]) -> None:
        for pid in pids:
            allowed[pid] = os.sched_getaffinity(pid)

    reports = _run(SmtSiblingSpin(), during=grab)
    cores = smt_cores(frozenset(os.sched_getaffinity(0)))
    for r in reports:
        assert 0 <= r.metrics["smt_handoffs"] <= r.work_units
        if cores:
            (cpu,) = allowed[r.tid]
            assert r.metrics["smt_cpu"] == cpu
        else:
            assert r.notes == ["no core with two allowed SMT threads: spinning unpinned"]
            assert allowed[r.tid] == os.sched_getaffinity(0)
    if cores:
        cpus = sorted(int(r.metrics["smt_cpu"]) for r in reports)
        assert tuple(cpus) in cores  # the two threads of one core


def test_cache_yield_yields_every_pass() -> None:
    # Both workers on one CPU: each yield finds the other runnable and switches.
    cpu = min(os.sched_getaffinity(0))
    cfg = WorkloadConfig(workers=2, work=CacheYield(), affinity=frozenset({cpu}))
    with WorkloadHandle.spawn(cfg, start=True) as h:
        time.sleep(0.5)
        reports = h.stop_and_collect()
    for r in reports:
        assert r.error == ""
        assert r.involuntary_csw > r.work_units // 4, r


def test_io_rand_read_reads_4k_blocks_the_kernel_counts() -> None:
    seen: dict[int, tuple[dict[str, int], dict[str, int]]] = {}

    def sample(pids: list[int]) -> None:
        before = {p: _io(p) for p in pids}
        time.sleep(0.2)
        for p in pids:
            seen[p] = (before[p], _io(p))

    reports = _run(IoRandRead(), secs=0.8, during=sample)
    for r in reports:
        before, after = seen[r.tid]
        calls = after["syscr"] - before["syscr"]
        assert calls > 0
        # Every read syscall of the worker in that window was one 4 KiB pread.
        assert after["rchar"] - before["rchar"] == calls * IO_BLOCK_BYTES
        assert r.metrics["read_bytes"] == r.metrics["reads"] * IO_BLOCK_BYTES
        assert any("O_DIRECT" in n or "DONTNEED" in n for n in r.notes), r.notes


def test_io_convoy_writes_reads_and_syncs() -> None:
    seen: dict[int, tuple[dict[str, int], dict[str, int]]] = {}

    def sample(pids: list[int]) -> None:
        before = {p: _io(p) for p in pids}
        time.sleep(0.2)
        for p in pids:
            seen[p] = (before[p], _io(p))

    reports = _run(IoConvoy(), secs=0.8, during=sample)
    for r in reports:
        before, after = seen[r.tid]
        assert after["wchar"] - before["wchar"] >= IO_BLOCK_BYTES
        assert after["rchar"] - before["rchar"] >= IO_BLOCK_BYTES
        assert r.metrics["write_bytes"] == r.metrics["read_bytes"] == r.work_units * 4096
        assert r.metrics["syncs"] == r.work_units // 16
        assert r.notes and mount_fstype("/tmp") in r.notes[0]
        if mount_fstype("/tmp") in DISK_FILESYSTEMS:  # direct reads reach the block layer
            assert after["read_bytes"] > before["read_bytes"], (before, after)


def test_sequence_runs_io_and_alu_hot_phases() -> None:
    seq = Sequence(Io(0.05), Phase.AluHot(0.05, "vec128"))
    (r,) = _run(seq, workers=1)
    assert r.iterations >= 1
    assert any("Io phase" in n for n in r.notes)


def test_io_rand_read_path_is_validated_and_part_of_equality() -> None:
    assert IoRandRead() == IoRandRead(None) and IoRandRead().path is None
    assert IoRandRead(Path("/dev/vdb")) == IoRandRead("/dev/vdb")
    with pytest.raises(ConfigError, match="IoRandRead path = 3 is not a path"):
        IoRandRead(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="IoRandRead path = '' is not a path"):
        IoRandRead("")


def test_io_rand_read_reads_a_given_file_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(os.urandom(IO_BLOCK_BYTES) * 64)
    before = data.read_bytes()
    for r in _run(IoRandRead(str(data))):
        assert r.metrics["reads"] == r.work_units
        assert r.notes == [f"{data} is not a block device: O_DIRECT reads of a file on "
                           f"{mount_fstype(str(data))}"] or "refuses O_DIRECT" in r.notes[0]
    assert data.read_bytes() == before


def test_io_rand_read_missing_or_tiny_file_is_the_workers_error(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"x")
    for path, message in ((tmp_path / "absent", "cannot be read here"),
                          (tiny, "smaller than one 4 KiB block")):
        with WorkloadHandle.spawn(WorkloadConfig(workers=1, work=IoRandRead(str(path))),
                                  start=True) as h:
            time.sleep(0.2)
            (r,) = h.stop_and_collect()
        assert message in r.error, r.error
