"""Signals as a terminal and CI deliver them: SIGTERM and SIGINT to the run's process
group end it as interrupted, with a sidecar and nothing left behind; a SIGINT that
reaches qemu only is reported as exactly that and costs no snapshot.

Each case runs `ktstr test` as a subprocess in its own process group on a restored
1n1l2c1t guest (the first run of the module saves it when it does not exist).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ktstr.vm.cpulock import holders
from ktstr.vm.snapshot import SavedGuest, snapshots_root
from tests.vm.probes import host_leftovers, qemu_run_id

KTSTR = str(Path(sys.executable).parent / "ktstr")
MARKER = "ktstr-signals: body started"

TESTS = f"""
import time
from ktstr import AssertResult, ktstr_test

@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1)
def quick(ctx):
    return AssertResult()

@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, timeout_s=300)
def sleeps(ctx):
    with open("/dev/kmsg", "w") as kmsg:  # the console log tells the host
        kmsg.write("{MARKER}\\n")
    time.sleep(60)

# One vCPU, so one host CPU each: two of them can run at once on a 2-CPU host.
@ktstr_test(llcs=1, cores=1, threads=1, duration_s=1)
def quick_one(ctx):
    return AssertResult()

@ktstr_test(llcs=1, cores=1, threads=1, duration_s=1, timeout_s=900)
def sleeps_one(ctx):
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write("{MARKER}\\n")
    time.sleep(600)

@ktstr_test(llcs=1, cores=1, threads=1, duration_s=1, timeout_s=900)
def sleeps_two(ctx):
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write("{MARKER}\\n")
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return False


def _group_gone(pgid: int, timeout: float = 5.0) -> bool:
    """No process is left in qemu's group: qemu, and the helpers it started (the `cat`
    feeding a restore ends by itself, on its broken pipe, just after qemu)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def _qemu_of(harness: int, timeout: float = 900.0) -> int:
    """The harness's qemu, once it starts: a VM first waits for its host CPUs, which
    other runs on the host may hold for minutes (ktstr.vm.cpulock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(harness)], capture_output=True, text=True)
        for pid in map(int, out.stdout.split()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
            except FileNotFoundError:
                continue
            if "qemu-system" in cmdline and "-machine" in cmdline:  # not `qemu --version`
                return pid
        time.sleep(0.05)
    pytest.fail("qemu never started")


def _wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if text in path.read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{text!r} never appeared in {path}")


def _catches_sigint(pid: int) -> bool:
    """qemu has installed its SIGINT handler (SigCgt has bit 2)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_run_outlives_its_case():
    """A case that fails half-way leaves no `ktstr test` (and so no qemu) running."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _start(tmp_path: Path, *names: str, ignore_sigint: bool = False,
           options: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    def child() -> None:
        # A terminal's Ctrl-C reaches a foreground group whose SIGINT is not ignored; a
        # background job of a non-interactive shell (or nohup) starts with it ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)
        os.setpgrp()

    proc = subprocess.Popen(
        [KTSTR, "test", "-p", "no:cacheprovider", "--ktstr-run-dir", str(tmp_path / "runs"),
         *options, *(f"{tmp_path / 'test_sig.py'}::{name}" for name in names)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=child)
    _STARTED.append(proc)
    return proc


def _sidecar(tmp_path: Path, name: str) -> dict:
    (path,) = (tmp_path / "runs").glob(f"*{name}.json")
    return json.loads(path.read_text())


def _saved_guest(tmp_path: Path, name: str) -> SavedGuest:
    """The saved guest of test `name` of TESTS, which exists after a run of it (that run
    saves it when it did not); its sidecar is removed: the cases look at their own only."""
    (tmp_path / "test_sig.py").write_text(TESTS)
    proc = _start(tmp_path, name)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    snap = SavedGuest(_sidecar(tmp_path, name)["snapshot"], snapshots_root())
    assert snap.exists()
    for path in (tmp_path / "runs").iterdir():
        if path.is_file():
            path.unlink()
    return snap


@pytest.fixture
def snapshot(tmp_path) -> SavedGuest:
    """The module's tests and their saved guest, which exists (a run of `quick` saves it
    when it did not)."""
    return _saved_guest(tmp_path, "quick")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_group_ends_the_run_as_interrupted(tmp_path, snapshot, sig):
    proc = _start(tmp_path, "sleeps")
    qemu = _qemu_of(proc.pid)
    run_id = qemu_run_id(qemu)
    _wait_for(tmp_path / "runs" / "test_sig.py_sleeps" / "console.log", MARKER, 120)
    os.killpg(proc.pid, sig)
    sent = time.monotonic()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out  # pytest's INTERRUPTED, the same for both signals
    assert time.monotonic() - sent < 15, "stopping took too long"
    assert not _alive(qemu) and _group_gone(qemu), "qemu (or a helper of it) survived"
    assert host_leftovers(run_id) == []
    assert list((tmp_path / "runs").rglob("scratch-*.img")) == []
    side = _sidecar(tmp_path, "sleeps")
    assert side["outcome"] == "interrupted", side
    assert f"interrupted by {sig.name}" in side["error"], side["error"]
    assert snapshot.exists()


@pytest.mark.parametrize("moment", ["restore", "body"])
def test_a_sigint_to_qemu_alone_is_reported_and_costs_no_snapshot(tmp_path, snapshot, moment):
    saved = snapshot.state.stat().st_mtime_ns
    proc = _start(tmp_path, "sleeps", ignore_sigint=True)
    qemu = _qemu_of(proc.pid)
    if moment == "restore":  # as soon as qemu takes SIGINT: the restore is under way
        deadline = time.monotonic() + 30
        while not _catches_sigint(qemu) and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        _wait_for(tmp_path / "runs" / "test_sig.py_sleeps" / "console.log", MARKER, 120)
    os.kill(qemu, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out  # the test failed; the harness itself was not stopped
    side = _sidecar(tmp_path, "sleeps")
    assert side["outcome"] == "interrupted", side
    assert re.search(r"qemu was stopped by SIGINT from pid \d+.*, not by ktstr",
                     side["error"]), side["error"]
    assert side["restore_fallback"] == "" and side["boot_mode"] in ("", "restored"), side
    assert snapshot.exists() and snapshot.state.stat().st_mtime_ns == saved, \
        "the snapshot was discarded or saved anew"
    assert "discarding snapshot" not in out, out
    assert not _alive(qemu) and _group_gone(qemu)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        out = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True)
        children = list(map(int, out.stdout.split()))
        found += children
        todo += children
    return found


def _is_vm(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except FileNotFoundError:
        return False
    return "qemu-system" in cmdline and "-machine" in cmdline


@pytest.fixture
def one_cpu_snapshot(tmp_path) -> SavedGuest:
    """The saved 1-vCPU guest the -n 2 cases restore (a run of `quick_one` saves it)."""
    return _saved_guest(tmp_path, "quick_one")


@pytest.mark.parametrize(("sig", "to"), [(signal.SIGTERM, "group"), (signal.SIGINT, "group"),
                                         (signal.SIGTERM, "controller")])
def test_a_signal_to_a_two_worker_run_stops_both_vms(tmp_path, one_cpu_snapshot, sig, to):
    """`ktstr test -n 2` with two restored VMs running: the group's signal reaches the
    controller and both workers (a SIGTERM to the controller alone, it passes on); each
    worker stops its VM and writes its sidecar, the run ends as interrupted, and no
    qemu, guest-memory name or CPU lock is left. Another run on the host can hold CPUs:
    the deadlines are generous, only outcomes are asserted."""
    proc = _start(tmp_path, "sleeps_one", "sleeps_two", options=("-n", "2"))
    logs = [tmp_path / "runs" / f"test_sig.py_{n}" / "console.log"
            for n in ("sleeps_one", "sleeps_two")]
    for log in logs:  # both bodies are running (a VM may first wait for a host CPU)
        _wait_for(log, MARKER, 900)
    qemus = [pid for pid in _descendants(proc.pid) if _is_vm(pid)]
    assert len(qemus) == 2, qemus
    run_ids = [qemu_run_id(q) for q in qemus]
    (os.killpg if to == "group" else os.kill)(proc.pid, sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out  # pytest's INTERRUPTED, as in a serial run
    for qemu, run_id in zip(qemus, run_ids, strict=True):
        assert not _alive(qemu) and _group_gone(qemu, 30), "a qemu survived its worker"
        assert host_leftovers(run_id) == []
    assert not [h for h in holders() if "test_sig.py" in h.test_id], "a CPU lock is held"
    for name in ("sleeps_one", "sleeps_two"):
        side = _sidecar(tmp_path, name)
        assert side["outcome"] == "interrupted", side
        assert f"interrupted by {sig.name}" in side["error"], side["error"]
    assert one_cpu_snapshot.exists()
