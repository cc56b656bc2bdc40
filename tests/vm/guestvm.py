"""A guest running a shell command while the host reads its kernel (tests and bench).

The guest runs the command through the `ktstr shell` path; the caller gets the
`Machine`, whose `memory_fds` are the guest's RAM.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.rqreader import RqReader
from ktstr.monitor.sample import MonitorSample
from ktstr.protocol import ShellRequest
from ktstr.runner.boot import boot
from ktstr.runner.vmrun import BOOT_BUDGET_S, vm_spec
from ktstr.topology import Topology
from ktstr.vm.accel import choose_accel
from ktstr.vm.kernel import Kernel
from ktstr.vm.machine import Machine

SPIN = "cp /bin/sh /tmp/gm-spin; taskset -c 1 /tmp/gm-spin -c 'while :; do :; done' &"


def sleepers(cpus: int) -> str:
    """A task waking every 50 ms on each CPU: no CPU stays idle (NOHZ) long enough for
    its rq clock to stop for a whole second."""
    return " ".join(f"taskset -c {c} sh -c 'while :; do sleep 0.05; done' &"
                    for c in range(cpus))


@contextlib.contextmanager
def guest(kernel: Kernel, topo: str, command: str, *, bzimage: bool,
          tcg_threads: str = "multi", host_kaslr: bool = False) -> Iterator[Machine]:
    """A guest running `command`; one that loads a sched_ext scheduler needs
    `tcg_threads="single"` (ktstr.vm.accel.choose_tcg_threads says why). `host_kaslr`:
    the vmlinux relocated by the host (ktstr.vm.hostkaslr), whatever the setting says."""
    accel = choose_accel()
    spec = vm_spec(kernel, Topology.parse(topo), 1024, accel, tcg_threads=tcg_threads)
    if bzimage:
        spec = replace(spec, image=kernel.image, firmware=None, host_kaslr=False)
    elif host_kaslr:
        vmlinux = kernel.host_kaslr_image()
        assert vmlinux is not None, f"kernel {kernel.key} cannot be relocated by the host"
        spec = replace(spec, image=vmlinux, host_kaslr=True,
                       append=tuple(a for a in spec.append if a != "nokaslr"))
    req = ShellRequest(topology=topo, cwd="/tmp", command=command,
                       seed=random.SystemRandom().getrandbits(63))
    with tempfile.TemporaryDirectory(prefix="ktstr-gm-") as tmp:
        booted = boot(spec, Path(tmp), BOOT_BUDGET_S[accel],
                      lambda: {"type": "go", "shell": replace(req, wall_time=time.time())
                               .to_dict()}, snapshots=False)
        try:
            yield booted.machine
        finally:
            booted.machine.kill()


def wait_for(what: str, sample: Callable[[], MonitorSample],
              ok: Callable[[MonitorSample], bool], timeout: float = 90.0) -> MonitorSample:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = sample()
        if ok(s):
            return s
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout}s; last sample: {s}")


def kernel_symbol(k: GuestKernel, name: str) -> int:
    """`name`'s address in this boot, from the whole kallsyms table (the monitor's layout
    names only the symbols it reads)."""
    addr = k.symtab().address(name, k.info.kernel_offset)
    assert addr is not None, f"{name} is not in the guest's kallsyms"
    return addr


def until(what: str, probe: Callable[[], Any], *, timeout: float = 90.0, every: float = 0.05,
          state: Callable[[], str] = lambda: "") -> Any:
    """Poll `probe` every `every` seconds until it returns something true; return that.
    Fails naming `what` (and `state()`, what was seen) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what} not seen within {timeout}s {state()}"
        time.sleep(every)


def sample_cost_us(reader: RqReader, n: int = 500) -> float:
    t = time.perf_counter()
    for _ in range(n):
        reader.sample()
    return (time.perf_counter() - t) / n * 1e6
