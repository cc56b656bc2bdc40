"""`ktstr shell`: a command or an interactive shell in a VM of the asked topology."""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

KTSTR = str(Path(sys.executable).parent / "ktstr")


def test_exec_runs_in_the_topology_and_returns_its_exit_code(tmp_path):
    out = subprocess.run(
        [KTSTR, "shell", "--topo", "1n2l2c1t", "--exec",
         "nproc; cat /sys/devices/system/cpu/cpu2/cache/index3/shared_cpu_list; pwd; exit 7"],
        capture_output=True, text=True, cwd=tmp_path, timeout=240, check=False)
    assert out.returncode == 7, out.stderr
    assert out.stdout.split() == ["4", "2-3", str(tmp_path)]


def test_interactive_shell_is_on_the_terminal(tmp_path):
    pid, fd = pty.fork()
    if pid == 0:  # the child: ktstr on a fresh pseudo-terminal, like a user's
        os.chdir(tmp_path)
        os.execv(KTSTR, [KTSTR, "shell", "--topo", "1n1l2c1t"])
    buf, sent, deadline = b"", False, time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                buf += chunk
            if not sent and buf.rstrip().endswith((b"#", b"$")):
                os.write(fd, b"echo hi-$((6*7)) $(hostname); exit 3\r")
                sent = True
    finally:
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    assert b"hi-42 ktstr" in buf, buf[-2000:]
    assert os.waitstatus_to_exitcode(status) == 3
