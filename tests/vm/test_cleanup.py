"""No qemu outlives a run and nothing is left on the host: Ctrl-C, or the harness killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.vm.probes import host_leftovers, qemu_run_id

HANGING_TEST = """
import time
from ktstr import ktstr_test

@ktstr_test(llcs=1, cores=2, duration_s=1, timeout_s=600)
def hangs(ctx):
    time.sleep(3600)
"""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except FileNotFoundError:  # a short-lived child (ldd, python -c) already gone
        return ""


def _alive(pid: int) -> bool:
    try:
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return False


def _start_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    (tmp_path / "test_hangs.py").write_text(HANGING_TEST)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--ktstr-run-dir",
         str(tmp_path / "runs"), str(tmp_path / "test_hangs.py")],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # A terminal's Ctrl-C reaches a foreground group whose SIGINT is not ignored.
        preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL), os.setpgrp()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        qemus = [p for p in _children(proc.pid) if "qemu-system" in _cmdline(p)]
        if qemus:
            time.sleep(2)  # let it boot a little
            return proc, qemus[0]
        time.sleep(0.2)
    proc.kill()
    pytest.fail("qemu never started")


def test_ctrl_c_stops_qemu_and_cleans_up(tmp_path):
    proc, qemu = _start_run(tmp_path)
    run_id = qemu_run_id(qemu)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=30) == 2  # pytest's "interrupted"
    assert not _alive(qemu)
    assert host_leftovers(run_id) == []
    # The scratch disk's image lives in the run directory while the VM runs; only a
    # SIGKILLed harness leaves it there (sparse: the blocks the guest wrote).
    assert list((tmp_path / "runs").rglob("scratch-*.img")) == []


def test_killed_harness_takes_qemu_with_it(tmp_path):
    proc, qemu = _start_run(tmp_path)
    run_id = qemu_run_id(qemu)
    proc.kill()  # SIGKILL: no cleanup code runs in the harness
    proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while _alive(qemu) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(qemu), "qemu survived its parent"
    assert host_leftovers(run_id) == []
