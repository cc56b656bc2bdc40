"""`ktstr shell` inside the guest: one command, or an interactive shell on the console.

The command runs with the same-path view of the host as a test body would
(same cwd, same tools), after the same topology check; its output and exit
code go back on the result port. The interactive shell gets ttyS0, which the
host wires to the user's terminal, as its controlling terminal.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import termios
from typing import Any

from ktstr.protocol import Outcome, ShellRequest

#: Output kept from a command, per stream; the rest is cut from the front.
OUTPUT_LIMIT = 1 << 20


def run_shell(req: ShellRequest) -> dict[str, Any]:
    os.chdir(req.cwd)
    if req.command is not None:
        done = subprocess.run(["/bin/sh", "-c", req.command], capture_output=True,
                              stdin=subprocess.DEVNULL, check=False)
        code = done.returncode
        return {"outcome": Outcome.PASSED if code == 0 else Outcome.FAILED, "exit_code": code,
                "stdout": done.stdout[-OUTPUT_LIMIT:].decode(errors="replace"),
                "stderr": done.stderr[-OUTPUT_LIMIT:].decode(errors="replace")}
    return {"outcome": Outcome.PASSED, "exit_code": _interactive(req.shell)}


def _interactive(shell: str) -> int:
    tty = os.open("/dev/ttyS0", os.O_RDWR | os.O_NOCTTY)

    def take_terminal() -> None:  # in the child, after setsid: make ttyS0 its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = dict(os.environ, TERM=os.environ.get("TERM", "vt100"))
    child = subprocess.Popen([shell, "-i"], stdin=tty, stdout=tty, stderr=tty, env=env,
                             start_new_session=True, preexec_fn=take_terminal)
    os.close(tty)
    return child.wait()
