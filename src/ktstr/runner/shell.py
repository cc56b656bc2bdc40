"""`ktstr shell`: boot a VM with a topology and run a command or a shell in it.

Same VM as a test gets (kernel, initramfs, same-path view of the host,
topology check); no test, no checks. With a command, its output comes back on
the result port and its exit code is returned; without one, the guest's
console is this terminal and the shell's exit code is returned.
"""

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ktstr.errors import GuestLostError, KtstrError
from ktstr.protocol import ShellRequest
from ktstr.runner.boot import BootMode, boot
from ktstr.runner.vmrun import BOOT_BUDGET_S, vm_spec
from ktstr.settings import settings
from ktstr.topology import Topology
from ktstr.vm.accel import choose_accel
from ktstr.vm.kernel import resolve_kernel
from ktstr.vm.machine import SCRATCH_DISK_MB


@dataclass(frozen=True, slots=True)
class ShellResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    boot_mode: BootMode | None = None


def run_shell(topology: Topology, *, kernel_spec: str | None, command: str | None,
              memory_mb: int = 2048, timeout_s: float | None = None,
              cold: bool = False, tcg_threads: str = "multi",
              disk_mb: int = SCRATCH_DISK_MB) -> ShellResult:
    """Boot (or restore: see ktstr.vm.snapshot; never for an interactive shell, whose
    console is this terminal), run `command` (None: an interactive shell), power off.
    The guest has a `disk_mb` MiB scratch disk (ktstr.system.blockdev; 0: none)."""
    kernel = resolve_kernel(kernel_spec)
    accel = choose_accel()
    interactive = command is None
    spec = vm_spec(kernel, topology, memory_mb, accel, console_stdio=interactive,
                   append=("quiet",) if interactive else (), tcg_threads=tcg_threads,
                   disk_mb=disk_mb)
    with tempfile.TemporaryDirectory(prefix="ktstr-shell-") as tmp:
        req = ShellRequest(topology=str(topology), cwd=str(Path.cwd()), command=command,
                           seed=random.SystemRandom().getrandbits(63))
        booted = boot(spec, Path(tmp), BOOT_BUDGET_S[accel],
                      lambda: {"type": "go",
                               "shell": replace(req, wall_time=time.time()).to_dict()},
                      snapshots=not (interactive or cold or settings().cold))
        machine = booted.machine
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(machine.kill)  # a no-op after a clean shutdown
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while True:
                left = 3600.0 if deadline is None else deadline - time.monotonic()
                msg = machine.recv(left)
                if msg is None:
                    raise GuestLostError(f"no answer from the guest within {timeout_s}s")
                if msg["type"] == "eof":
                    raise GuestLostError(machine.stopped_from_outside()
                                         or "the guest died: " + machine.console_tail())
                if msg["type"] == "result":
                    break
            machine.shutdown()
    if "exit_code" not in msg:
        raise KtstrError(str(msg.get("error", "the guest could not run the command")))
    return ShellResult(int(msg["exit_code"]), str(msg.get("stdout", "")),
                       str(msg.get("stderr", "")), booted.mode)


def main_exit(result: ShellResult) -> int:
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.exit_code
