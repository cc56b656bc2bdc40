"""The guest kernel as the host's captures and writes reach it during a run, and the freezes.

The guest kernel is the sampler's once it has opened one, else opened here on
demand (the sampler may be off), before the guest is stopped, so that its cost
and that of the BPF layout (seconds the first time per kernel build) are not
freeze time. A freeze stops every vCPU (QMP `stop`), runs the read or write,
and resumes (QMP `cont`, always, also when the read failed): the guest sees no
time pass (its clock stands still while stopped). Every freeze is measured on
the host's monotonic clock and added up in `frozen_s`, by which the run's
deadline moves.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ktstr.errors import KtstrError
from ktstr.monitor.bpfstate import bpf_layout
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.guestmem import GuestMemory
from ktstr.monitor.rqreader import RqReader

T = TypeVar("T")


class GuestAccess:
    def __init__(self, qmp: Callable[..., Any], memory_fds: list[int], nr_cpus: int,
                 opened: Callable[[], GuestKernel | None] = lambda: None) -> None:
        """`opened`: the guest kernel another reader (the sampler) has open, or None."""
        self._qmp = qmp
        self._fds = list(memory_fds)
        self._nr_cpus = nr_cpus
        self._opened = opened
        self._mem: GuestMemory | None = None
        self._reader: RqReader | None = None
        self.lock = threading.RLock()  # the request loop and the watch starter
        self.frozen_s = 0.0  # every freeze of the run

    def reader(self) -> RqReader:
        """The runqueue reader (and through it the guest kernel), opened once; raises
        MonitorUnavailable, OSError or ValueError when the kernel cannot be read."""
        with self.lock:
            if self._reader is None:
                kernel = self._opened()
                if kernel is None:
                    if self._mem is None:
                        self._mem = GuestMemory.from_fds(self._fds)
                    kernel = GuestKernel.open(self._mem, self._nr_cpus)
                self._reader = RqReader(kernel)
                # The BPF offsets take seconds to derive the first time per kernel build:
                # here, not in a freeze. A failure shows again, and is said, in a capture.
                with contextlib.suppress(KtstrError, OSError, ValueError):
                    bpf_layout(kernel)
            return self._reader

    def frozen(self, read: Callable[[], T]) -> tuple[T, float]:
        """`read()` with every vCPU stopped; returns its value and the freeze in seconds."""
        began = time.monotonic()
        self._qmp("stop")
        try:
            value = read()
        finally:
            try:
                self._qmp("cont")
            finally:
                frozen = time.monotonic() - began
                self.frozen_s += frozen
        return value, frozen

    def close(self) -> None:
        with self.lock:
            self._reader = None
            if self._mem is not None:
                self._mem.close()
                self._mem = None
