"""Host CPU reservations (ktstr.vm.cpulock): real flocks, real processes, a tmp lock dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ktstr.vm.cpulock import (
    CpuWaitTimeout,
    cpus_needed,
    holders,
    reserve_host_cpus,
)

#: A process that holds `cpus` of the pool under ROOT, says so, and keeps them until
#: its stdin closes (or it is killed).
HOLDER = """
import sys
from pathlib import Path
from ktstr.vm.cpulock import reserve_host_cpus
root, count, cpus = Path(sys.argv[1]), int(sys.argv[2]), [int(c) for c in sys.argv[3:]]
with reserve_host_cpus(count, test_id="tests/x.py::held", root=root, cpus=cpus) as r:
    print("held", *r.cpus, flush=True)
    sys.stdin.read()
"""


def start_holder(root: Path, count: int, cpus: list[int]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), str(count),
                             *map(str, cpus)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("held")
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)


@pytest.mark.parametrize(("vcpus", "accel", "threads", "host", "want"), [
    (4, "tcg", "single", 2, 1), (4, "tcg", "multi", 2, 2), (1, "tcg", "multi", 2, 1),
    (8, "kvm", "multi", 64, 8), (128, "kvm", "multi", 64, 64)])
def test_cpus_needed(vcpus, accel, threads, host, want):
    assert cpus_needed(vcpus, accel, threads, host) == want


def test_free_cpus_are_taken_at_once_without_a_wait(tmp_path):
    with reserve_host_cpus(2, root=tmp_path, cpus=[0, 1]) as r:
        assert r.cpus == [0, 1] and r.wait_s == 0.0
        assert [h.cpu for h in holders(tmp_path)] == [0, 1]
    assert holders(tmp_path) == []


def test_second_process_waits_until_the_first_releases(tmp_path):
    proc = start_holder(tmp_path, 1, [0])
    try:
        (held,) = holders(tmp_path)
        assert (held.cpu, held.pid, held.test_id) == (0, proc.pid, "tests/x.py::held")
        assert abs(held.since - time.time()) < 30 and "-c" in held.command
        timer = threading.Timer(1.0, release, [proc])  # the holder lets go after ~1 s
        timer.start()
        started = time.monotonic()
        with reserve_host_cpus(1, test_id="me", root=tmp_path, cpus=[0]) as r:
            waited = time.monotonic() - started
            assert r.cpus == [0] and waited >= 0.8 and r.wait_s >= 0.8
            assert [(h.pid, h.test_id) for h in holders(tmp_path)] == [(os.getpid(), "me")]
        timer.join(10)
        assert proc.returncode == 0  # it released its lock and ended normally
    finally:
        proc.kill()
        proc.wait(10)


def test_a_dead_holder_releases_its_cpus(tmp_path):
    proc = start_holder(tmp_path, 2, [0, 1])
    assert len(holders(tmp_path)) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert holders(tmp_path) == []  # the file stays, the lock went with the process
    with reserve_host_cpus(2, root=tmp_path, cpus=[0, 1]) as r:
        assert r.wait_s == 0.0


def test_a_vm_takes_all_its_cpus_or_none_and_times_out_clearly(tmp_path):
    proc = start_holder(tmp_path, 1, [1])
    try:
        # cpu 0 is free, but 2 are needed
        with pytest.raises(CpuWaitTimeout) as e, reserve_host_cpus(
                2, test_id="t::two", root=tmp_path, cpus=[0, 1], max_wait_s=0.5):
            pass
        text = str(e.value)
        assert "t::two waited" in text and "2 free host CPU(s) of 2" in text
        assert f"cpu 1: pid {proc.pid}" in text and "ktstr locks" in text
        assert e.value.waited_s >= 0.5
        assert [h.cpu for h in holders(tmp_path)] == [1]  # cpu 0 was given back
    finally:
        release(proc)
    assert holders(tmp_path) == []


def test_a_request_larger_than_the_pool_takes_the_pool(tmp_path):
    with reserve_host_cpus(8, root=tmp_path, cpus=[0, 1]) as r:
        assert r.cpus == [0, 1]


def test_locks_command_lists_holders(tmp_path, monkeypatch, capsys):
    from ktstr.cli.main import main
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path))
    proc = start_holder(tmp_path / "cpu-locks", 1, [3])
    try:
        assert main(["locks"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].split() == ["CPU", "PID", "SINCE", "TEST", "COMMAND"]
        assert out[1].split()[:2] == ["3", str(proc.pid)]
        assert "tests/x.py::held" in out[1]
    finally:
        release(proc)
    assert main(["locks"]) == 0
    assert capsys.readouterr().out.startswith("no host CPU is held")
