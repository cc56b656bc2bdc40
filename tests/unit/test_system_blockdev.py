"""The scratch disk's reader (fake /sys trees) and its region allocator (real OFD locks)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from ktstr.system.blockdev import (
    REGION_BYTES,
    SCRATCH_SERIAL,
    ScratchDisk,
    block_stat,
    claim_region,
    find_scratch_disk,
    region_bounds,
    region_count,
)


def _block(root: Path, name: str, serial: str | None, sectors: int) -> None:
    d = root / "block" / name
    d.mkdir(parents=True)
    if serial is not None:
        (d / "serial").write_text(serial + "\n")
    (d / "size").write_text(f"{sectors}\n")


def test_scratch_disk_is_found_by_serial_not_by_name(tmp_path: Path) -> None:
    _block(tmp_path, "vda", "rootdisk", 1000)
    _block(tmp_path, "vdb", SCRATCH_SERIAL, 524288)
    _block(tmp_path, "loop0", None, 8)  # no serial attribute at all
    disk = find_scratch_disk(sys_root=tmp_path, dev_root=Path("/dev"))
    assert disk == ScratchDisk("vdb", Path("/dev/vdb"), 256 << 20)


def test_no_scratch_disk_without_that_serial_or_without_block_dir(tmp_path: Path) -> None:
    assert find_scratch_disk(sys_root=tmp_path) is None
    _block(tmp_path, "vda", "other", 1000)
    assert find_scratch_disk(sys_root=tmp_path) is None


def test_block_stat_names_the_fields_and_takes_short_lines(tmp_path: Path) -> None:
    d = tmp_path / "block" / "vda"
    d.mkdir(parents=True)
    (d / "stat").write_text("  68 0 544 46 32 0 128 80 0 128 187\n")
    stat = block_stat("vda", tmp_path)
    assert stat["read_ios"] == 68 and stat["read_sectors"] == 544
    assert stat["write_ios"] == 32 and stat["write_sectors"] == 128
    assert "flush_ios" not in stat


def test_regions_tile_the_disk_without_overlap() -> None:
    assert region_count(256 << 20) == 64
    assert region_count(REGION_BYTES - 1) == 0
    spans = [region_bounds(i) for i in range(64)]
    for (off, size), (nxt, _) in itertools.pairwise(spans):
        assert off + size == nxt
    assert spans[-1][0] + spans[-1][1] == 256 << 20


def _disk(blocks_of_regions: int) -> ScratchDisk:
    return ScratchDisk("fake", Path("/nonexistent"), blocks_of_regions * REGION_BYTES)


def test_claims_in_one_process_get_distinct_regions_until_none_is_left(tmp_path: Path) -> None:
    disk = _disk(3)
    held = [claim_region(disk, tmp_path) for _ in range(3)]
    assert [r.index for r in held if r is not None] == [0, 1, 2]
    assert claim_region(disk, tmp_path) is None  # all three taken
    assert held[1] is not None
    held[1].release()
    again = claim_region(disk, tmp_path)
    assert again is not None and again.index == 1 and again.offset == REGION_BYTES
    for r in [*held, again]:
        if r is not None:
            r.release()


def test_a_region_held_by_another_process_is_skipped_and_freed_when_it_dies(
        tmp_path: Path) -> None:
    disk = _disk(4)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: holds region 0 until told to exit
        try:
            r = claim_region(disk, tmp_path)
            os.write(ready_w, bytes([r.index if r else 255]))
            os.read(go_r, 1)
        finally:
            os._exit(0)
    assert os.read(ready_r, 1) == b"\x00"
    mine = claim_region(disk, tmp_path)
    assert mine is not None and mine.index == 1
    os.write(go_w, b"x")
    os.waitpid(pid, 0)  # its exit dropped the lock on region 0
    freed = claim_region(disk, tmp_path)
    assert freed is not None and freed.index == 0
    mine.release()
    freed.release()
    for fd in (ready_r, ready_w, go_r, go_w):
        os.close(fd)
