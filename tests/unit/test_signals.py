"""SIGINT and SIGTERM as interruptions, and a qemu stopped from outside told apart from
a broken guest (no VM: stand-in processes and machines)."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from ktstr.runner import boot as boot_mod
from ktstr.runner.signals import Interrupted, exit_status, signal_behind, stop_on_signals
from ktstr.topology import Topology
from ktstr.vm.machine import Machine, VmSpec


@pytest.fixture(autouse=True)
def python_defaults():
    """The handlers a fresh interpreter has (this pytest has the plugin's installed)."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_sigterm_raises_interrupted_naming_it_and_the_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert caught.value.signum == signal.SIGTERM
    assert isinstance(caught.value, KeyboardInterrupt), "pytest treats it as Ctrl-C"
    assert signal_behind(caught.value) is signal.SIGTERM and exit_status(caught.value) == 143
    assert signal.getsignal(signal.SIGTERM) == before


def test_sigint_raises_interrupted_and_a_plain_keyboard_interrupt_means_sigint():
    with pytest.raises(Interrupted) as caught, stop_on_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert caught.value.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal_behind(KeyboardInterrupt()) is signal.SIGINT
    assert exit_status(KeyboardInterrupt()) == 130


def test_a_second_signal_while_stopping_does_not_break_the_stop():
    stopped = []
    with pytest.raises(Interrupted), stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:  # the shutdown ladder: a second signal here must not cut it short
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            stopped.append(True)
    assert stopped == [True]


def test_an_ignored_signal_stays_ignored():
    """nohup, or a background job of a non-interactive shell: SIGINT is not for the run."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # nothing raised
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_nested_uses_leave_the_outer_handler_in_place():
    with stop_on_signals():
        outer = signal.getsignal(signal.SIGTERM)
        with stop_on_signals():
            assert signal.getsignal(signal.SIGTERM) is outer
        assert signal.getsignal(signal.SIGTERM) is outer
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# -- a qemu stopped from outside ----------------------------------------------------------

@pytest.fixture
def machine(tmp_path):
    spec = VmSpec(image=tmp_path / "k", initrd=tmp_path / "i",
                  topology=Topology.parse("1n1l1c1t"), memory_mb=256, accel="tcg")
    m = Machine(spec, tmp_path)
    yield m
    if m._proc is not None and m._proc.poll() is None:
        m._proc.kill()
        m._proc.wait()
    shutil.rmtree(m._sock_dir, ignore_errors=True)


def _stand_in(m: Machine, script: str) -> subprocess.Popen[bytes]:
    """A process in qemu's place, writing qemu's log."""
    with open(m.qemu_log, "wb") as err:
        m._proc = subprocess.Popen(["sh", "-c", script], stderr=err)
    return m._proc


def test_a_qemu_killed_by_a_signal_says_which(machine):
    proc = _stand_in(machine, "sleep 30")
    os.kill(proc.pid, signal.SIGKILL)
    assert machine.stopped_from_outside() == "qemu was killed by SIGKILL, not by ktstr"


def test_a_qemu_that_quit_on_anothers_signal_names_the_sender(machine):
    _stand_in(machine, "echo 'qemu-system-x86_64: terminating on signal 2 from pid 77 (bash)'"
              " >&2; exit 0")
    assert machine.stopped_from_outside() == ("qemu was stopped by SIGINT from pid 77 (bash), "
                                              "not by ktstr (it exited with status 0)")


def test_a_qemu_this_harness_stopped_or_whose_guest_powered_off_is_no_outsiders_doing(machine):
    _stand_in(machine, f"echo 'qemu: terminating on signal 15 from pid {os.getpid()} (py)' >&2")
    assert machine.stopped_from_outside() is None, "our own SIGTERM"
    _stand_in(machine, "exit 0")  # a guest power-off, or a reboot after a panic
    assert machine.stopped_from_outside() is None
    proc = _stand_in(machine, "sleep 30")
    machine._kill()  # the ladder's SIGTERM
    assert proc.returncode == -signal.SIGTERM and machine.exit_code == -signal.SIGTERM
    assert machine.stopped_from_outside() is None


def test_a_running_qemu_is_not_reported_after_a_short_wait(machine):
    _stand_in(machine, "sleep 30")
    started = time.monotonic()
    assert machine.stopped_from_outside(wait=0.2) is None
    assert time.monotonic() - started < 2


# -- a restore whose qemu was stopped from outside keeps its snapshot ---------------------

class FakeSnap:
    key = "fake"
    discarded: list[str]

    def __init__(self) -> None:
        self.discarded = []

    def exists(self) -> bool:
        return True

    def discard(self, why: str) -> None:
        self.discarded.append(why)


class DeadMachine:
    """A restored machine whose qemu is gone when its orders are sent."""

    outside: str | None = "qemu was killed by SIGINT, not by ktstr"

    def __init__(self, spec, workdir, *, restore=None) -> None:
        self.console_log = workdir / "console.log"
        self.killed = False

    def launch(self) -> None: ...

    def wait_restored(self, timeout: float) -> None: ...

    def send(self, msg) -> None: ...

    def recv(self, timeout: float):
        return {"type": "eof"}

    def stopped_from_outside(self) -> str | None:
        return self.outside

    def kill(self) -> None:
        self.killed = True

    def console_tail(self) -> str:
        return "tail"


def test_a_restore_stopped_from_outside_raises_that_and_keeps_the_snapshot(tmp_path,
                                                                            monkeypatch):
    snap = FakeSnap()
    monkeypatch.setattr(boot_mod, "snapshot_for", lambda spec: snap)
    monkeypatch.setattr(boot_mod, "Machine", DeadMachine)
    monkeypatch.setattr(boot_mod, "_cold_boot", lambda *a: pytest.fail("booted cold"))
    with pytest.raises(boot_mod.StoppedFromOutside, match="killed by SIGINT, not by ktstr"):
        boot_mod.boot(None, tmp_path, 10.0, dict, snapshots=True)  # type: ignore[arg-type]
    assert snap.discarded == []


def test_a_restored_guest_that_died_by_itself_still_costs_its_snapshot(tmp_path, monkeypatch):
    snap = FakeSnap()
    monkeypatch.setattr(boot_mod, "snapshot_for", lambda spec: snap)
    monkeypatch.setattr(DeadMachine, "outside", None)
    monkeypatch.setattr(boot_mod, "Machine", DeadMachine)

    class ColdBooted(Exception):
        pass

    def cold(*args):
        raise ColdBooted

    monkeypatch.setattr(boot_mod, "_cold_boot", cold)
    with pytest.raises(ColdBooted):
        boot_mod.boot(None, tmp_path, 10.0, dict, snapshots=True)  # type: ignore[arg-type]
    assert len(snap.discarded) == 1 and "dead after its orders" in snap.discarded[0]


def test_traceback_entries_without_a_line_number_are_left_out_of_the_report():
    from ktstr.pytest_plugin import has_line_number

    class NoLine:
        @property
        def lineno(self) -> int:
            raise TypeError("unsupported operand type(s) for -: 'NoneType' and 'int'")

    class Line:
        lineno = 3

    assert not has_line_number(NoLine()) and has_line_number(Line())


def test_a_command_about_to_exit_ignores_them_from_then_on():
    with stop_on_signals(then_ignore=True):
        pass
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
