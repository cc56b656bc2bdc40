"""Boot a VM until its guest agent says hello, retrying a boot the emulator broke.

qemu 7.2's multi-threaded TCG has a cross-modifying-code race (fixed in qemu
8.1): now and then the guest kernel, patching its own text while other vCPUs
run, takes an "Oops: int3" and panics (1 boot in ~40 here). Such a crash before
the agent's hello says nothing about the test or the command, so the boot is
retried; each crashed attempt's console is kept beside the run's. Every
caller that boots (a test run, `ktstr shell`) goes through here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktstr.errors import GuestLostError
from ktstr.vm.machine import Machine, VmSpec

log = logging.getLogger(__name__)

BOOT_ATTEMPTS = 4

_KERNEL_CRASH_MARKERS = ("Kernel panic", "Oops:", "BUG:")


class BootFailed(GuestLostError):
    """No hello from the guest: what happened, how many attempts, and the console's tail."""

    def __init__(self, message: str, attempts: int, crashes: list[str],
                 console_tail: str) -> None:
        super().__init__(message, attempts, crashes, console_tail)
        self.message = message
        self.attempts = attempts
        self.crashes = crashes
        self.console_tail = console_tail

    def __str__(self) -> str:
        return f"{self.message}\n{self.console_tail}" if self.console_tail else self.message


@dataclass
class Booted:
    """A launched machine whose agent said hello; the caller shuts it down."""

    machine: Machine
    hello: dict[str, Any]
    boot_s: float  # qemu start -> hello, host wall clock, of the attempt that worked
    attempts: int
    crashes: list[str] = field(default_factory=list)  # one line per crashed attempt


def boot(spec: VmSpec, workdir: Path, budget_s: float) -> Booted:
    """Launch, wait `budget_s` for hello; BootFailed if none came."""
    crashes: list[str] = []
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        machine = Machine(spec, workdir)
        started = time.monotonic()
        machine.launch()
        try:
            hello = machine.recv(budget_s)
        except BaseException:
            machine.kill()
            raise
        if hello is not None and hello.get("type") == "hello":
            return Booted(machine, hello, time.monotonic() - started, attempt, crashes)
        machine.kill()
        crash = kernel_crash_line(tail(machine.console_log, 400))
        if crash is None:
            why = (f"the guest agent never said hello (boot budget {budget_s:.0f}s)"
                   if hello is None else "the guest died during boot")
            raise BootFailed(f"{why}; qemu exit code {machine.exit_code}", attempt, crashes,
                             machine.console_tail())
        kept = workdir / f"console-boot{attempt}.log"
        machine.console_log.replace(kept)
        crashes.append(f"{crash} (console: {kept})")
        log.warning("guest kernel crashed during boot %d/%d: %s", attempt, BOOT_ATTEMPTS, crash)
    raise BootFailed(f"the guest kernel crashed during all {BOOT_ATTEMPTS} boots",
                     BOOT_ATTEMPTS, crashes, tail(workdir / f"console-boot{BOOT_ATTEMPTS}.log"))


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").rstrip().splitlines()[-lines:])
    except OSError:
        return ""


def kernel_crash_line(console: str) -> str | None:
    """The first line of a kernel crash report in `console`, if there is one."""
    for line in console.splitlines():
        if any(marker in line for marker in _KERNEL_CRASH_MARKERS):
            return line.strip()
    return None
