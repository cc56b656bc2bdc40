"""Bring up a VM whose guest agent has taken its orders: restored or booted.

With snapshots on, a guest saved at the agent's hello (ktstr.vm.snapshot) is
restored and given its orders; a restore that fails in any way before the
agent answers (qemu cannot load the file, the guest dies or stays silent) is
discarded with a warning and the run boots cold instead, saving a fresh
snapshot on the way. A cold boot saves one whenever none exists.

qemu 7.2's multi-threaded TCG has a cross-modifying-code race (fixed in qemu
8.1): now and then the guest kernel, patching its own text while other vCPUs
run, takes an "Oops: int3" and panics (1 boot in ~40 here). Such a crash before
the agent's hello says nothing about the test or the command, so the boot is
retried; each crashed attempt's console is kept beside the run's. So is a
guest that vanished without a crash report and without powering off: the
emulator reset it (seen once in ~60 cold boots here, during the kernel's own
init, the console cut off mid-boot and qemu exiting 0). Every caller that
boots (a test run, `ktstr shell`) goes through here.

A qemu stopped by a signal ktstr did not send (a `kill` of its pid, a SIGINT
meant for someone else) says nothing about the snapshot or the kernel: it
raises `StoppedFromOutside`, naming the signal, and the snapshot it was
restoring stays (a restore that fails is discarded only when nothing outside
stopped it). An interruption of the harness itself (KeyboardInterrupt, see
ktstr.runner.signals) stops the VM being brought up and passes on.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktstr.errors import GuestLostError, VmLaunchError
from ktstr.vm.machine import Machine, VmSpec, machine_identity
from ktstr.vm.qemu import QemuBinary
from ktstr.vm.snapshot import SavedGuest, save, snapshot_key, snapshots_root

log = logging.getLogger(__name__)

BOOT_ATTEMPTS = 4
#: A restored guest loads in well under a second and answers its orders within seconds;
#: these bound how long a broken snapshot can cost before the cold boot replaces it.
RESTORE_LOAD_S = 30.0
RESTORE_ANSWER_S = 60.0

_KERNEL_CRASH_MARKERS = ("Kernel panic", "Oops:", "BUG:")
_INIT_DIED = "Attempted to kill init"
#: What the guest kernel prints (at KERN_EMERG: whatever the log level) as it powers off.
POWER_DOWN = "reboot: Power down"


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


class StoppedFromOutside(GuestLostError):
    """qemu was killed, or made to quit, by a signal ktstr did not send."""

    def __init__(self, message: str, console_tail: str = "") -> None:
        super().__init__(message, console_tail)
        self.message = message
        self.console_tail = console_tail

    def __str__(self) -> str:
        return self.message


Orders = Callable[[], dict[str, Any]]


class RestoreFailed(Exception):
    pass


class BootMode(enum.StrEnum):
    """How the VM of a run came up."""

    COLD = "cold"  # booted
    RESTORED = "restored"  # from a snapshot of a booted guest (ktstr.vm.snapshot)


@dataclass
class Booted:
    """A running machine whose agent has its orders; the caller reads its answers
    (the first one already waits in `machine.recv`) and shuts it down."""

    machine: Machine
    hello: dict[str, Any]  # of the boot, or of the boot that was saved and restored
    boot_s: float  # qemu start -> ready for orders, host wall clock, of the attempt that worked
    attempts: int
    crashes: list[str] = field(default_factory=list)  # one line per crashed attempt
    mode: BootMode = BootMode.COLD
    snapshot: str = ""  # the key of the snapshot restored or saved
    save_s: float = 0.0  # how long saving the snapshot stopped the guest
    fallback: str = ""  # why a snapshot could not be restored, when one was tried


def boot(spec: VmSpec, workdir: Path, budget_s: float, go: Orders, *,
         snapshots: bool) -> Booted:
    """A machine running `spec` that has received the message `go()` makes at the moment
    it is sent (its wall time is the guest's): restored from a snapshot when `snapshots`
    and one exists, else booted within `budget_s` (BootFailed if not)."""
    snap = snapshot_for(spec) if snapshots else None
    fallback = ""
    if snap is not None and snap.exists():
        try:
            return _restore(spec, workdir, snap, go, min(budget_s, RESTORE_ANSWER_S))
        except RestoreFailed as e:
            fallback = str(e)
            snap.discard(fallback)
    booted = _cold_boot(spec, workdir, budget_s)
    booted.fallback = fallback
    try:
        if snap is not None and not snap.exists():
            meta = {"hello": booted.hello, "topology": str(spec.topology),
                    "memory_mb": spec.memory_mb, "accel": spec.accel,
                    "image": str(spec.image), "append": list(spec.append),
                    "qemu": QemuBinary.find().version}
            saved = save(booted.machine, snap, meta)
            if saved is not None:
                booted.snapshot, booted.save_s = snap.key, saved
                log.info("saved snapshot %s in %.1fs", snap.key, saved)
        booted.machine.send(go())
    except OSError as e:  # the port is closed: qemu is gone
        _raise_if_stopped_from_outside(booted.machine)
        booted.machine.kill()
        raise BootFailed(f"the guest went away before its orders: {e}", booted.attempts,
                         booted.crashes, booted.machine.console_tail()) from e
    except BaseException:
        booted.machine.kill()
        raise
    return booted


def snapshot_for(spec: VmSpec) -> SavedGuest:
    # The initramfs is named by the hash of its content, so its path (in the identity)
    # says it all; the kernel image is named by its version only, so its stat counts.
    return SavedGuest(snapshot_key(machine_identity(spec), QemuBinary.find().version,
                                   [spec.image]), snapshots_root())


def _restore(spec: VmSpec, workdir: Path, snap: SavedGuest, go: Orders,
             answer_s: float) -> Booted:
    """Restore `snap`, give it `go`, and see it answer; RestoreFailed otherwise."""
    machine = Machine(spec, workdir, restore=snap)
    started = time.monotonic()
    try:
        machine.launch()
        machine.wait_restored(RESTORE_LOAD_S)
        ready = time.monotonic() - started
        machine.send(go())
        first = machine.recv(answer_s)
    except (VmLaunchError, OSError) as e:  # OSError: the orders found the port closed
        _raise_if_stopped_from_outside(machine)
        machine.kill()
        why = e.message if isinstance(e, VmLaunchError) else f"its port closed: {e}"
        raise RestoreFailed(f"qemu could not restore it: {why}") from e
    except BaseException:
        machine.kill()
        raise
    if first is None or first.get("type") != "topology":
        if first is not None and first.get("type") == "eof":
            _raise_if_stopped_from_outside(machine)
        machine.kill()
        why = ("silent" if first is None else "dead" if first.get("type") == "eof"
               else f"answering {first.get('type')!r}")
        kept = workdir / "console-restore.log"
        with contextlib.suppress(OSError):
            machine.console_log.replace(kept)
        raise RestoreFailed(f"the restored guest was {why} after its orders (console: {kept})")
    machine.unread(first)
    snap.touch()
    return Booted(machine, snap.meta().get("hello", {}), ready, 1, mode=BootMode.RESTORED,
                  snapshot=snap.key)


def _cold_boot(spec: VmSpec, workdir: Path, budget_s: float) -> Booted:
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
        if hello is not None:  # the port closed: qemu is gone or going
            _raise_if_stopped_from_outside(machine)
        machine.kill()
        crash = kernel_crash_line(tail(machine.console_log, 400))
        if crash is None and hello is not None:  # qemu went away: how?
            crash = silent_reset(machine.console_text())
        if crash is None or _INIT_DIED in crash:  # our init failing is no emulator flake
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


def _raise_if_stopped_from_outside(machine: Machine) -> None:
    """StoppedFromOutside, with qemu's leftovers cleaned up, when a signal ktstr did not
    send ended `machine`'s qemu; nothing otherwise."""
    why = machine.stopped_from_outside()
    if why is not None:
        machine.kill()
        raise StoppedFromOutside(why, machine.console_tail())


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").rstrip().splitlines()[-lines:])
    except OSError:
        return ""


def silent_reset(console: str) -> str | None:
    """What to say of a guest whose qemu ended with neither a crash report nor the
    kernel's power-off on its console (`console`): it was reset under the kernel's
    feet. None when it powered off (its init or agent ended it: no emulator fault)."""
    if POWER_DOWN in console:
        return None
    lines = console.rstrip().splitlines()
    return ("the guest reset with no crash report and no power-off, after: "
            + (lines[-1].strip() if lines else "(an empty console)"))


def kernel_crash_line(console: str) -> str | None:
    """The first line of a kernel crash report in `console`, if there is one."""
    for line in console.splitlines():
        if any(marker in line for marker in _KERNEL_CRASH_MARKERS):
            return line.strip()
    return None
