"""Run a bench script again inside a guest and relay its output (for the guest-side figures)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ktstr.runner.shell import run_shell
from ktstr.topology import Topology


def rerun_in_guest(script: str, args: list[str], topo: str, kernel: str | None) -> int:
    """`python SCRIPT ARGS...` in a `topo` guest of `kernel`; prints its output, returns
    its exit code."""
    cmd = " ".join([sys.executable, str(Path(script).resolve()), *args])
    t0 = time.monotonic()
    res = run_shell(Topology.parse(topo), kernel_spec=kernel, command=cmd, timeout_s=1800)
    print(f"# guest {topo}, {res.boot_mode} boot, {time.monotonic() - t0:.0f}s in all, "
          f"exit {res.exit_code}")
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.exit_code
