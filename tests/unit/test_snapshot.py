"""Saved guests (vm.snapshot.SavedGuest): naming, RAM copying and the save/list/clean
logic (no VM: qemu is faked)."""

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

from ktstr.topology import Topology
from ktstr.vm import snapshot as snapmod
from ktstr.vm.machine import VmSpec, machine_identity
from ktstr.vm.qemu import QemuBinary
from ktstr.vm.snapshot import (
    SavedGuest,
    clean_snapshots,
    copy_data,
    copy_nonzero,
    list_snapshots,
    save,
    snapshot_key,
)


def _spec(tmp_path: Path, **kw) -> VmSpec:
    base = {"image": tmp_path / "vmlinux", "initrd": tmp_path / "initrd.cpio",
            "topology": Topology.parse("1n2l2c1t"), "memory_mb": 1024, "accel": "tcg"}
    return VmSpec(**{**base, **kw})


@pytest.fixture
def qemu_on_path(monkeypatch):
    """A stand-in qemu binary; QemuBinary.find caches what it found, so the cache is
    cleared around the test (a later VM test must find the real qemu)."""
    monkeypatch.setenv("KTSTR_QEMU", "/bin/true")
    QemuBinary.find.cache_clear()
    yield
    QemuBinary.find.cache_clear()


def test_identity_leaves_out_the_runs_own_paths(tmp_path, qemu_on_path):
    ident = machine_identity(_spec(tmp_path))
    assert machine_identity(_spec(tmp_path)) == ident
    text = " ".join(ident)
    assert "ktstr-run-node0" in text and "path=/run/qmp" in text
    assert "file=/scratch-256M.img" in text  # a restored run's own image takes its place
    assert "-incoming" not in ident


@pytest.mark.parametrize("change", [{"topology": Topology.parse("2n2l2c1t")},
                                    {"memory_mb": 2048}, {"append": ("quiet",)},
                                    {"tcg_threads": "single"}, {"accel": "kvm"},
                                    {"disk_mb": 0}, {"disk_mb": 512}])
def test_anything_that_shapes_the_guest_changes_the_key(tmp_path, qemu_on_path, change):
    files = [tmp_path / "f"]
    files[0].write_bytes(b"x")
    key = snapshot_key(machine_identity(_spec(tmp_path)), "7.2.22", files)
    assert snapshot_key(machine_identity(_spec(tmp_path)), "7.2.22", files) == key
    assert snapshot_key(machine_identity(_spec(tmp_path, **change)), "7.2.22", files) != key


def test_qemu_version_and_a_rewritten_file_change_the_key(tmp_path):
    f = tmp_path / "vmlinux"
    f.write_bytes(b"one")
    key = snapshot_key(["qemu"], "7.2.22", [f])
    assert snapshot_key(["qemu"], "8.2.0", [f]) != key
    f.write_bytes(b"other")
    os.utime(f, ns=(1, 2))
    assert snapshot_key(["qemu"], "7.2.22", [f]) != key


def test_copy_keeps_content_and_leaves_zero_blocks_as_holes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    size = 8 * 2**20
    with open(src, "wb") as f:
        f.truncate(size)
        f.seek(3 * 2**20 + 5)
        f.write(b"guest data")
        f.seek(size - 4096)
        f.write(b"\xff" * 4096)
        f.seek(5 * 2**20)
        f.write(bytes(256 * 1024))  # written, but zeros: still not worth copying
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        written = copy_nonzero(fin.fileno(), fout.fileno())
    assert dst.read_bytes() == src.read_bytes()
    # At most the two 64 KiB blocks that hold data; never the 256 KiB of written zeros.
    assert 2 * 4096 <= written <= 2 * 64 * 1024
    assert os.stat(dst).st_blocks * 512 <= 4 * 64 * 1024


def test_restore_copy_keeps_content_and_holes(tmp_path):
    """copy_data, the restore's copy: a saved RAM file (what copy_nonzero wrote) comes
    out byte for byte, with its holes still holes."""
    saved, src, dst = tmp_path / "saved", tmp_path / "src", tmp_path / "dst"
    size = 8 * 2**20
    with open(src, "wb") as f:
        f.truncate(size)
        for at in (0, 3 * 2**20 + 5, size - 4096):
            f.seek(at)
            f.write(os.urandom(4096))
    with open(src, "rb") as fin, open(saved, "wb") as fout:
        kept = copy_nonzero(fin.fileno(), fout.fileno())
    with open(saved, "rb") as fin, open(dst, "wb") as fout:
        copied = copy_data(fin.fileno(), fout.fileno())
    assert dst.read_bytes() == src.read_bytes()
    assert os.stat(dst).st_blocks * 512 <= 2 * kept  # not 8 MiB: the holes stayed
    assert kept <= copied <= kept + 3 * 64 * 1024


class FakeVm:
    """Stands in for qemu's QMP: `migrate` writes the stream, as `exec:cat > F` would."""

    def __init__(self, tmp_path: Path, status: str | None = "completed") -> None:
        self.calls: list[str] = []
        self.status = status
        self.events = ["setup", "active", *([status] if status else [])]
        ram = tmp_path / "guest-ram"
        with open(ram, "wb") as f:
            f.truncate(2**20)
            f.write(b"kernel")
        self.memory_fds = [os.open(ram, os.O_RDONLY)]
        self.console_log = tmp_path / "console.log"
        self.console_log.write_text("[ 0.0] Linux version 7.2\n")

    def qmp(self, cmd: str, **args):
        self.calls.append(cmd)
        if cmd == "migrate":
            dest = args["uri"].split("> ", 1)[1].strip("'")
            Path(dest).write_bytes(b"QEVM")
        if cmd == "query-migrate":
            return {"status": self.status, "error-desc": "disk full"}
        return {}

    def clear_qmp_events(self) -> None:
        self.calls.append("clear events")

    def qmp_event(self, name: str, timeout: float):
        """qemu's MIGRATION events of a migration that ends in `status`, one per call;
        None once they are all taken, as at a deadline."""
        if name != "MIGRATION" or "migrate" not in self.calls or not self.events:
            return None
        return {"event": "MIGRATION", "data": {"status": self.events.pop(0)}}


def test_save_writes_a_whole_snapshot_and_resumes_the_guest(tmp_path):
    snap = SavedGuest("k1", tmp_path / "snaps")
    vm = FakeVm(tmp_path)
    assert save(vm, snap, {"topology": "1n1l1c1t"}) is not None
    assert vm.calls[0] == "stop" and vm.calls[-1] == "cont"
    assert "migrate-set-capabilities" in vm.calls
    assert snap.exists() and snap.state.read_bytes() == b"QEVM"
    assert snap.ram_files()[0].read_bytes()[:6] == b"kernel"
    assert snap.console.read_text().startswith("[ 0.0] Linux")
    assert snap.meta()["topology"] == "1n1l1c1t" and snap.meta()["ram_files"] == 1
    assert [p.name for p in (tmp_path / "snaps").iterdir() if p.is_dir()] == ["k1"]
    assert save(FakeVm(tmp_path), snap, {}) is None  # already there: nothing to do


def test_a_failed_migration_saves_nothing_and_still_resumes(tmp_path, caplog):
    snap = SavedGuest("k2", tmp_path / "snaps")
    vm = FakeVm(tmp_path, status="failed")
    assert save(vm, snap, {}) is None
    assert vm.calls[-1] == "cont"
    assert "migration failed (disk full)" in caplog.text
    assert not snap.dir.exists()
    assert [p for p in snap.root.iterdir() if p.is_dir()] == []  # no temporary left


def test_the_save_waits_on_migration_events_not_on_polling(tmp_path):
    vm = FakeVm(tmp_path)
    assert save(vm, SavedGuest("k5", tmp_path / "snaps"), {}) is not None
    assert vm.calls.index("clear events") < vm.calls.index("migrate")
    assert "query-migrate" not in vm.calls and vm.events == []


def test_a_migration_that_does_not_end_is_cancelled(tmp_path, caplog):
    vm = FakeVm(tmp_path, status=None)  # its events stop at "active"
    assert save(vm, SavedGuest("k6", tmp_path / "snaps"), {}) is None
    assert "migrate_cancel" in vm.calls and vm.calls[-1] == "cont"
    assert f"migration not done within {snapmod.SAVE_TIMEOUT_S:.0f}s" in caplog.text


def test_a_save_in_progress_elsewhere_is_not_waited_for(tmp_path):
    snap = SavedGuest("k3", tmp_path / "snaps")
    snap.root.mkdir()
    with snapmod.exclusive_lock(snap.root / "k3.lock", "test"):
        vm = FakeVm(tmp_path)
        assert save(vm, snap, {}) is None
        assert vm.calls == []  # the guest was not even stopped


def test_list_and_clean_by_prefix(tmp_path):
    root = tmp_path / "snaps"
    for key in ("aaa1", "aab2", "bbb3"):
        d = root / key
        d.mkdir(parents=True)
        (d / "state").write_bytes(b"x")
        (d / "meta.json").write_text(json.dumps({"key": key}))
    (root / ".tmp-half").mkdir()
    assert [s.key for s in list_snapshots(root)] == ["aaa1", "aab2", "bbb3"]
    assert clean_snapshots(["aa"], root) == ["aaa1", "aab2"]
    assert clean_snapshots(None, root) == ["bbb3"]
    assert list_snapshots(root) == []


def test_discard_removes_it(tmp_path):
    snap = SavedGuest("k4", tmp_path)
    snap.dir.mkdir()
    (snap.dir / "state").write_bytes(b"x")
    snap.discard("corrupt")
    assert not snap.dir.exists()
    snap.discard("twice is fine")


def test_pruning_keeps_the_most_recently_used(tmp_path):
    root = tmp_path / "snaps"
    for i, key in enumerate(("old", "used", "new")):
        d = root / key
        d.mkdir(parents=True)
        (d / "state").write_bytes(b"x")
        (d / "meta.json").write_text("{}")
        os.utime(d / "meta.json", (1000 + i, 1000 + i))
    SavedGuest("old", root).touch()  # restored just now
    assert snapmod.prune_snapshots(2, root) == ["used"]
    assert [s.key for s in list_snapshots(root)] == ["new", "old"]


class SlowFakeVm(FakeVm):
    """A FakeVm whose migration takes a while, so that two savers overlap."""

    def qmp(self, cmd: str, **args):
        if cmd == "migrate":
            time.sleep(0.5)
        return super().qmp(cmd, **args)


def _save_racing(tmp: str, start: Any, results: Any) -> None:
    """One of two processes saving the same key (pytest-xdist workers booting one
    configuration): both start together."""
    own = Path(tmp) / str(os.getpid())
    own.mkdir()
    vm = SlowFakeVm(own)
    start.wait()
    saved = save(vm, SavedGuest("same", Path(tmp) / "snaps"), {"topology": "1n1l1c1t"})
    results.put((saved is not None, vm.calls[-1] if vm.calls else ""))


def test_two_processes_saving_one_key_leave_one_whole_snapshot(tmp_path):
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_save_racing, args=(str(tmp_path), start, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0  # neither saver failed
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    # One saved; the other found the save under way (or done) and went on: its guest,
    # if it was stopped at all, runs again.
    assert [saved for saved, _ in outcomes] == [False, True]
    assert all(last in ("", "cont") for _, last in outcomes)
    snap = SavedGuest("same", tmp_path / "snaps")
    assert snap.exists() and snap.state.read_bytes() == b"QEVM"
    assert snap.meta()["topology"] == "1n1l1c1t"
    assert sorted(p.name for p in snap.root.iterdir() if p.is_dir()) == ["same"]


def test_a_snapshot_that_appears_during_a_save_is_kept(tmp_path, caplog):
    """A saver that did not see the other's lock (its lock file removed by a clean)
    loses the final rename: the snapshot already there stays, the run goes on."""
    snap = SavedGuest("k7", tmp_path / "snaps")
    first = FakeVm(tmp_path)

    class RacedVm(FakeVm):
        def qmp(self, cmd: str, **args):
            if cmd == "migrate":  # the other saver finishes meanwhile
                (snap.root / "k7.lock").unlink()
                assert save(first, snap, {"by": "first"}) is not None
            return super().qmp(cmd, **args)

    caplog.set_level("INFO")
    assert save(RacedVm(tmp_path), snap, {"by": "second"}) is None
    assert snap.meta()["by"] == "first" and snap.state.read_bytes() == b"QEVM"
    assert "appeared while saving" in caplog.text
    assert sorted(p.name for p in snap.root.iterdir() if p.is_dir()) == ["k7"]
