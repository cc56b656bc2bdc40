"""Machine.wait_restored and qmp_event on a stand-in QMP: the restore waits on qemu's
MIGRATION events and fails with the same errors as when it polled (no VM)."""

import shutil

import pytest

from ktstr.errors import VmLaunchError
from ktstr.topology import Topology
from ktstr.vm.machine import Machine, VmSpec
from ktstr.vm.snapshot import SavedGuest


class FakeQmp:
    def __init__(self, events: list[dict], status: str | None) -> None:
        self.events = list(events)
        self.status = status  # query-status's answer; None: qemu is gone
        self.calls: list[str] = []

    def cmd(self, cmd: str, **args):
        self.calls.append(cmd)
        if cmd == "query-status":
            if self.status is None:
                raise ConnectionResetError("EOF")
            return {"status": self.status}
        return {}

    def clear_events(self) -> None:
        self.calls.append("clear events")

    def pull_event(self, wait: float):
        if self.events:
            return self.events.pop(0)
        raise TimeoutError


class FakeProc:
    pid = 4242

    def __init__(self, alive: bool) -> None:
        self.alive = alive

    def poll(self):
        return None if self.alive else 1


def migration(status: str) -> dict:
    return {"event": "MIGRATION", "data": {"status": status}}


@pytest.fixture
def machine(tmp_path):
    spec = VmSpec(image=tmp_path / "k", initrd=tmp_path / "i",
                  topology=Topology.parse("1n1l1c1t"), memory_mb=256, accel="tcg")
    m = Machine(spec, tmp_path, restore=SavedGuest("k", tmp_path / "snaps"))
    yield m
    shutil.rmtree(m._sock_dir, ignore_errors=True)


def restore(m: Machine, qmp: FakeQmp, alive: bool = True, timeout: float = 0.2) -> None:
    m._qmp = qmp  # type: ignore[assignment]
    m._proc = FakeProc(alive)  # type: ignore[assignment]
    m.wait_restored(timeout)


def test_the_completed_event_lets_the_restored_guest_run(machine):
    qmp = FakeQmp([{"event": "RESUME"}, migration("setup"), migration("active"),
                   migration("completed")], status="paused")
    restore(machine, qmp)
    assert qmp.calls.index("clear events") < qmp.calls.index("migrate-incoming")
    assert qmp.calls[-2:] == ["query-status", "cont"]


def test_no_end_within_the_deadline_is_the_timeout_error(machine, tmp_path):
    (tmp_path / "qemu.log").write_text("qemu: loading...")
    qmp = FakeQmp([migration("active")], status="inmigrate")
    with pytest.raises(VmLaunchError) as err:
        restore(machine, qmp, timeout=0.3)
    assert err.value.message == ("restore did not complete (qemu status 'inmigrate' after "
                                 "0s): qemu: loading...")
    assert "cont" not in qmp.calls


def test_a_qemu_that_exits_is_noticed_before_the_deadline(machine, tmp_path):
    (tmp_path / "qemu.log").write_text("qemu: load of migration failed")
    with pytest.raises(VmLaunchError) as err:
        restore(machine, FakeQmp([], status=None), alive=False, timeout=60.0)
    assert err.value.message == "qemu died while restoring: qemu: load of migration failed"


def test_a_failed_migration_is_said(machine):
    with pytest.raises(VmLaunchError, match=r"restore did not complete \(migration failed\)"):
        restore(machine, FakeQmp([migration("failed")], status="inmigrate"))


def test_qmp_event_skips_other_events_and_gives_up_when_qemu_is_gone(machine):
    machine._qmp = FakeQmp([{"event": "STOP"}, migration("active")], status="paused")
    machine._proc = FakeProc(alive=False)
    assert machine.qmp_event("MIGRATION", 5.0) == migration("active")
    assert machine.qmp_event("MIGRATION", 5.0) is None
