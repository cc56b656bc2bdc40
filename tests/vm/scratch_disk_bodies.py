"""Test bodies for test_scratch_disk.py: the block-I/O work types on the VM's scratch disk.

Not a test module (no test_ prefix). While the workers run, a sampler reads
what the guest kernel says about them: block time (`/proc/<pid>/sched`, with
schedstats switched on), block-I/O delay (`/proc/<pid>/stat` field 42,
`delayacct_blkio_ticks`, with task delay accounting switched on), bytes that
reached the block layer (`/proc/<pid>/io`), and the OFD locks holding their
regions (`/proc/locks`); the device's own counters (`/sys/block/<dev>/stat`)
are read before and after. Presence and direction only: emulation is slow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ktstr import AssertResult, CgroupDef, Ctx, execute_defs, ktstr_test
from ktstr.system.blockdev import REGION_BYTES, block_stat, find_scratch_disk
from ktstr.work.io import IO_BLOCK_BYTES, IoConvoy, IoRandRead, IoSyncWrite
from ktstr.work.sequence import Io, Sequence, Spin
from tests.vm.probes import Sampler, cgroup_pids, read, reports_by_cgroup, sched_field

SAMPLE_S = 0.05
NAMES = ("rand", "convoy", "sync", "seq")
STAT_BLKIO_TICKS = 42  # /proc/<pid>/stat: aggregated block I/O delays, clock ticks


@contextmanager
def knobs(**values: str) -> Iterator[None]:
    """Set /proc/sys/kernel/<name> for the block, then put the old values back."""
    old = {}
    for name, value in values.items():
        path = f"/proc/sys/kernel/{name}"
        old[path] = (read(path) or "0").strip()
        with open(path, "w") as f:
            f.write(value)
    try:
        yield
    finally:
        for path, value in old.items():
            with open(path, "w") as f:
                f.write(value)


def _io(pid: int) -> dict[str, int] | None:
    text = read(f"/proc/{pid}/io")
    if text is None:
        return None
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def _ofd_lock_starts(inode: int) -> set[int]:
    """Byte offsets locked right now with OFD locks on the file of `inode`."""
    starts = set()
    for line in (read("/proc/locks") or "").splitlines():
        f = line.split()
        if len(f) >= 8 and f[1] == "OFDLCK" and int(f[5].rsplit(":", 1)[1]) == inode:
            starts.add(int(f[6]))
    return starts


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def io_types_block_on_the_scratch_disk(ctx: Ctx) -> AssertResult:
    disk = find_scratch_disk()
    assert disk is not None, ("no block device with serial ktstr-scratch; hint: a kernel cache "
                              "entry without virtio_blk gets it from `ktstr kernel fetch`")
    fd = os.open(disk.path, os.O_RDONLY)
    try:  # every run starts from a fresh image: nothing of an earlier run shows
        assert os.pread(fd, 1 << 20, 0) == bytes(1 << 20)
    finally:
        os.close(fd)
    io: dict[int, list[dict[str, int]]] = {}
    block_ms: dict[int, float] = {}
    blkio_ticks: dict[int, int] = {}
    states: dict[int, set[str]] = {}
    regions_held: list[set[int]] = []
    lock_file = f"/dev/shm/ktstr-scratch-{disk.name}.regions"

    def sample() -> None:
        for name in NAMES:
            for pid in cgroup_pids(ctx.cgroups.path(name)):
                now = _io(pid)
                if now is not None:
                    io.setdefault(pid, []).append(now)
                v = sched_field(pid, "sum_block_runtime")
                if v is None:
                    v = sched_field(pid, "stats.sum_block_runtime")
                if v is not None:
                    block_ms[pid] = v
                stat = read(f"/proc/{pid}/stat")
                if stat:
                    rest = stat[stat.rindex(")") + 2:].split()
                    states.setdefault(pid, set()).add(rest[0])
                    blkio_ticks[pid] = int(rest[STAT_BLKIO_TICKS - 3])
        if os.path.exists(lock_file):
            regions_held.append(_ofd_lock_starts(os.stat(lock_file).st_ino))

    before = block_stat(disk.name)
    with knobs(sched_schedstats="1", task_delayacct="1"), Sampler(sample, SAMPLE_S) as s:
        result = execute_defs(ctx, [
            CgroupDef("rand", workers=1, work=IoRandRead()),
            CgroupDef("convoy", workers=1, work=IoConvoy()),
            CgroupDef("sync", workers=1, work=IoSyncWrite()),
            CgroupDef("seq", workers=1, work=Sequence(Io(0.2), Spin(0.05))),
        ])
    after = block_stat(disk.name)
    dev = {k: after[k] - before[k] for k in after}
    groups = reports_by_cgroup(result)
    most = max(regions_held, key=len, default=set())
    out = [f"disk={disk} samples={s.samples} device_delta={dev} regions_held_at_once={most}"]
    for name in NAMES:
        for r in groups[name]:
            first, last = io[r.tid][0], io[r.tid][-1]
            d = {k: last[k] - first[k] for k in ("read_bytes", "write_bytes")}
            out.append(f"{name} tid={r.tid} units={r.work_units} io={d} "
                       f"block_ms={block_ms.get(r.tid, 0.0):.1f} "
                       f"blkio_ticks={blkio_ticks.get(r.tid)} states={sorted(states[r.tid])} "
                       f"on_cpu={r.cpu_time_ns / max(1, r.wall_time_ns):.2f} "
                       f"metrics={r.metrics} notes={r.notes}")
            assert not r.notes, (name, r.notes)  # no fallback: the disk was there
            assert r.work_units > 0, (name, r)
            assert block_ms.get(r.tid, 0.0) > 0, (name, block_ms)  # slept in D state
            key = "read_bytes" if name == "rand" else "write_bytes"
            assert d[key] > 0, (name, d)  # the bytes went below the page cache
    # Four workers held four distinct regions at once (lock byte i holds region i).
    assert len(most) == 4 and max(most) < disk.size // REGION_BYTES, most
    assert sum(blkio_ticks.get(r.tid, 0) for rs in groups.values() for r in rs) > 0, blkio_ticks
    (rand,) = groups["rand"]
    (sync,) = groups["sync"]
    # Every counted direct read/write completed at the device first: the device saw them.
    assert dev["read_ios"] >= rand.work_units, (dev, rand.work_units)
    assert dev["write_ios"] >= sync.work_units, (dev, sync.work_units)
    assert dev["read_sectors"] * 512 >= rand.work_units * IO_BLOCK_BYTES, dev
    assert dev["flush_ios"] >= sync.work_units, dev  # each fdatasync flushed the cache
    return AssertResult(details=out)
