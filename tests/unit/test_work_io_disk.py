"""The block-I/O work types on a scratch disk: each worker stays inside its own region.

A regular file stands in for the device (`find_scratch_disk` is pointed at it in
the forked workers); what each worker wrote is then read back from the file.
The VM test (tests/vm/test_scratch_disk.py) does the same on the real device.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import run_workers

from ktstr.system.blockdev import LOCK_DIR, REGION_BYTES, ScratchDisk, claim_region
from ktstr.work import io as io_mod
from ktstr.work.io import IO_BLOCK_BYTES, IO_SYNC_WRITE_STRIPES, IoConvoy, IoRandRead, IoSyncWrite
from ktstr.work.sequence import Io, Sequence

REGIONS = 4


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScratchDisk]:
    image = tmp_path / "disk"
    with open(image, "wb") as f:
        f.truncate(REGIONS * REGION_BYTES)
    try:
        os.close(os.open(image, os.O_RDONLY | os.O_DIRECT))
    except OSError:
        pytest.skip(f"{tmp_path} refuses O_DIRECT")
    fake = ScratchDisk(f"unit-{uuid.uuid4().hex[:8]}", image, REGIONS * REGION_BYTES)
    monkeypatch.setattr(io_mod, "find_scratch_disk", lambda: fake)
    yield fake
    # The workers' region locks live in a file of the host's LOCK_DIR (in a guest, its
    # own /dev/shm): the fake disk's file goes with the test.
    (LOCK_DIR / f"ktstr-scratch-{fake.name}.regions").unlink(missing_ok=True)


def written_blocks(disk: ScratchDisk) -> list[int]:
    """Indices of the 4 KiB blocks of the image that are not all zeros."""
    data = disk.path.read_bytes()
    zero = bytes(IO_BLOCK_BYTES)
    return [i // IO_BLOCK_BYTES for i in range(0, len(data), IO_BLOCK_BYTES)
            if data[i:i + IO_BLOCK_BYTES] != zero]


def regions_of(blocks: list[int]) -> set[int]:
    return {b * IO_BLOCK_BYTES // REGION_BYTES for b in blocks}


def test_sync_writes_stay_in_two_regions_one_per_worker(disk: ScratchDisk) -> None:
    reports = run_workers(IoSyncWrite(), workers=2, secs=0.6)
    for r in reports:
        assert r.work_units > 0 and r.notes == [], r
    blocks = written_blocks(disk)
    assert regions_of(blocks) == {0, 1}
    per_region = REGION_BYTES // IO_BLOCK_BYTES
    assert all(b % per_region < IO_SYNC_WRITE_STRIPES for b in blocks)  # the striped MiB


def test_convoy_writes_its_region_and_reads_what_it_wrote(disk: ScratchDisk) -> None:
    reports = run_workers(IoConvoy(), workers=2, secs=0.6)
    for r in reports:
        assert r.notes == [], r.notes
        assert r.metrics["write_bytes"] == r.metrics["read_bytes"] == r.work_units * 4096
        assert r.metrics["syncs"] == r.work_units // 16
    assert regions_of(written_blocks(disk)) == {0, 1}


def test_rand_read_reads_its_region_without_writing(disk: ScratchDisk) -> None:
    for r in run_workers(IoRandRead(), workers=2, secs=0.4):
        assert r.notes == [] and r.metrics["reads"] == r.work_units > 0, r
    assert written_blocks(disk) == []


def test_sequence_io_phase_writes_its_region(disk: ScratchDisk) -> None:
    (r,) = run_workers(Sequence(Io(0.05)), workers=1, secs=0.4)
    assert r.notes == [], r.notes
    assert regions_of(written_blocks(disk)) == {0}


def test_with_every_region_held_the_worker_falls_back_and_says_so(disk: ScratchDisk) -> None:
    held = [claim_region(disk) for _ in range(REGIONS)]
    try:
        (r,) = run_workers(IoSyncWrite(), workers=1, secs=0.3)
    finally:
        for region in held:
            assert region is not None
            region.release()
    assert r.work_units > 0
    assert [n for n in r.notes if f"all {REGIONS} regions of the scratch disk" in n], r.notes
    assert written_blocks(disk) == []


def test_without_a_scratch_disk_the_note_names_the_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io_mod, "find_scratch_disk", lambda: None)
    (r,) = run_workers(IoSyncWrite(), workers=1, secs=0.3)
    assert any(n.startswith("no scratch disk (no block device with serial ktstr-scratch): "
                            "IoSyncWrite writes a temp file on") for n in r.notes), r.notes
