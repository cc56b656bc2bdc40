"""Host CPUs reserved for a VM's vCPU threads: one flock per host CPU.

`ktstr test -n N` runs N VMs at once; without a reservation they would share
the host's CPUs and each would run slower than its deadlines assume. A VM
needs as many host CPUs as it has vCPU threads (`cpus_needed`: one under TCG
with a single thread, else min(vCPUs, host CPUs)); `reserve_host_cpus` takes
that many before qemu starts and holds them for the VM's life.

Each host CPU is a file `cpu-N` in `lock_dir()` (under ktstr's cache, so two
pytest sessions on one host see each other) and is held by an flock on it: the
kernel drops the lock when its holder closes the file or dies, so a killed run
never leaves a CPU taken. The holder writes who it is (pid, command, test id,
since when) into the file for `ktstr locks` (`holders`).

A VM takes its CPUs all at once or none: when fewer are free it releases what
it took and waits, polling, up to a bound (`CpuWaitTimeout` then); the wait is
in the run's result (`RunResult.cpu_wait_s`). `Reservation.cpus` are the CPUs
taken: performance mode pins the VM's vCPU threads to them (ktstr.vm.perfmode).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ktstr.errors import KtstrError
from ktstr.vm.kernel import cache_root

#: How long a VM waits for its host CPUs before its run fails.
CPU_WAIT_MAX_S = 3600.0
#: How often a waiting VM tries again.
POLL_S = 0.2


class CpuWaitTimeout(KtstrError):
    """A VM did not get its host CPUs within the bound (`waited_s`)."""

    def __init__(self, message: str, waited_s: float) -> None:
        super().__init__(message, waited_s)
        self.message = message
        self.waited_s = waited_s

    def __str__(self) -> str:
        return self.message


def lock_dir() -> Path:
    """Where the per-CPU lock files live: `<cache_root>/cpu-locks`."""
    return cache_root() / "cpu-locks"


def host_cpus() -> list[int]:
    """The host CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def vcpu_thread_count(vcpus: int, accel: str, tcg_threads: str) -> int:
    """How many host threads run a VM's `vcpus`: one under TCG with a single thread,
    else one per vCPU."""
    return 1 if accel == "tcg" and tcg_threads == "single" else vcpus


def cpus_needed(vcpus: int, accel: str, tcg_threads: str, host: int) -> int:
    """Host CPUs a VM with `vcpus` needs: one per vCPU thread, at most the host's."""
    return max(1, min(vcpu_thread_count(vcpus, accel, tcg_threads), host))


@dataclass(frozen=True)
class Holder:
    """Who holds a host CPU, as its lock file says."""

    cpu: int
    pid: int
    command: str
    test_id: str
    since: float  # time.time() when taken

    def line(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"{self.cpu:>4}  {self.pid:>8}  {when}  {self.test_id or '-'}  {self.command}"


@dataclass
class Reservation:
    """The host CPUs a VM holds and how long it waited for them."""

    cpus: list[int] = field(default_factory=list)
    wait_s: float = 0.0


def _try_take(path: Path) -> int | None:
    """An fd holding the flock on `path`, or None if another holder has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _take_all(root: Path, cpus: list[int], count: int) -> list[tuple[int, int]]:
    """`count` of `cpus` as (cpu, fd), or [] (nothing held) when fewer are free."""
    held: list[tuple[int, int]] = []
    for cpu in cpus:
        fd = _try_take(root / f"cpu-{cpu}")
        if fd is not None:
            held.append((cpu, fd))
            if len(held) == count:
                return held
    for _, fd in held:
        os.close(fd)
    return []


@contextlib.contextmanager
def reserve_host_cpus(count: int, *, test_id: str = "", root: Path | None = None,
                      cpus: list[int] | None = None,
                      max_wait_s: float = CPU_WAIT_MAX_S) -> Iterator[Reservation]:
    """Hold `count` host CPUs (of `cpus`, default: this process's) while the block runs;
    wait for them up to `max_wait_s`, then raise `CpuWaitTimeout`."""
    root = root or lock_dir()
    root.mkdir(parents=True, exist_ok=True)
    pool = host_cpus() if cpus is None else cpus
    count = min(count, len(pool))
    started = time.monotonic()
    while not (held := _take_all(root, pool, count)):
        waited = time.monotonic() - started
        if waited >= max_wait_s:
            busy = ", ".join(f"cpu {h.cpu}: pid {h.pid} ({h.test_id or h.command})"
                             for h in holders(root))
            raise CpuWaitTimeout(
                f"{test_id or 'a VM'} waited {waited:.0f}s for {count} free host CPU(s) "
                f"of {len(pool)}, held by {busy or 'nobody any more'}; hint: run fewer "
                "VMs at once (-n), or see who holds them with `ktstr locks`", waited)
        time.sleep(POLL_S)
    waited = time.monotonic() - started
    # Taken at the first try: no wait (not the microseconds the try took).
    reservation = Reservation([cpu for cpu, _ in held], waited if waited >= POLL_S else 0.0)
    try:
        me = {"pid": os.getpid(), "command": " ".join(sys.argv)[:200], "test_id": test_id,
              "since": time.time()}
        for _, fd in held:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        yield reservation
    finally:
        for _, fd in held:
            os.close(fd)  # closing drops the flock


def holders(root: Path | None = None) -> list[Holder]:
    """Every host CPU held now, by whom; a file nobody holds is skipped."""
    root = root or lock_dir()
    found: list[Holder] = []
    files = [p for p in root.glob("cpu-*") if p.name[4:].isdigit()]
    for path in sorted(files, key=lambda p: int(p.name[4:])):
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                continue  # free
            except BlockingIOError:
                pass
            try:
                info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:  # being written this instant
                info = {}
        finally:
            os.close(fd)
        found.append(Holder(int(path.name[4:]), int(info.get("pid", 0)),
                            str(info.get("command", "?")), str(info.get("test_id", "")),
                            float(info.get("since", 0.0))))
    return found
