"""Memory-pressure and cache-pressure work types.

- `PageFaultChurn(region_kib, touches_per_cycle, spin_iters)`: one anonymous
  private mapping of `region_kib` KiB; each cycle writes one byte to
  `touches_per_cycle` random 4 KiB pages (each first touch is a minor fault
  through `do_anonymous_page`), drops the whole region with
  `madvise(MADV_DONTNEED)` (the next touch faults again, and the unmap
  flushes TLBs), then spins `spin_iters` multiply-add steps. One cycle is one
  work unit.
- `CachePressure(size_kib, stride)`: a `size_kib` KiB buffer walked with a
  read-modify-write of every `stride`-th byte per pass (done in C through a
  strided slice, so the access pattern, not the interpreter, dominates); sized
  by default to pressure a 32 KiB L1d. One pass is one work unit.
- `CacheYield(size_kib, stride)`: CachePressure's pass, then `sched_yield` each
  round: the task keeps a cache-hot working set yet offers the CPU every pass,
  so the scheduler re-places a task whose cache footprint it may lose (on a
  shared CPU each yield that finds a runnable task is an involuntary switch).
"""

from __future__ import annotations

import mmap
import os
import random
from dataclasses import dataclass
from typing import ClassVar

from ktstr.errors import ConfigError
from ktstr.validators import count
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop, spin_batch

PAGE_BYTES = 4096
PAGE_FAULT_REGION_KIB = 4096
PAGE_FAULT_TOUCHES_PER_CYCLE = 64
PAGE_FAULT_SPIN_ITERS = 1024
CACHE_PRESSURE_SIZE_KIB = 32
CACHE_PRESSURE_STRIDE = 64

#: byte -> byte + 1 (mod 256): the "modify" of CachePressure's read-modify-write.
_INCREMENT = bytes((b + 1) & 0xFF for b in range(256))


@dataclass(frozen=True, slots=True, init=False)
class PageFaultChurn(WorkType):
    """Fault random pages of an anonymous region, drop it, spin; repeat."""

    region_kib: int
    touches_per_cycle: int
    spin_iters: int

    def __init__(self, region_kib: int = PAGE_FAULT_REGION_KIB,
                 touches_per_cycle: int = PAGE_FAULT_TOUCHES_PER_CYCLE,
                 spin_iters: int = PAGE_FAULT_SPIN_ITERS) -> None:
        object.__setattr__(self, "region_kib", count(region_kib, "PageFaultChurn region_kib"))
        object.__setattr__(self, "touches_per_cycle",
                           count(touches_per_cycle, "PageFaultChurn touches_per_cycle"))
        object.__setattr__(self, "spin_iters",
                           count(spin_iters, "PageFaultChurn spin_iters", minimum=0))
        if self.region_kib * 1024 < PAGE_BYTES:
            raise ConfigError(
                f"PageFaultChurn region_kib = {region_kib} is smaller than one 4 KiB page; "
                "hint: use region_kib >= 4")

    def run(self, loop: WorkLoop) -> None:
        pages = self.region_kib * 1024 // PAGE_BYTES
        region = mmap.mmap(-1, pages * PAGE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        rng = random.Random(os.getpid())
        x = 1
        try:
            while loop.running:
                for page in rng.choices(range(pages), k=self.touches_per_cycle):
                    region[page * PAGE_BYTES] = 1
                region.madvise(mmap.MADV_DONTNEED)
                x = spin_batch(self.spin_iters, x)
                loop.spin()
                loop.iterations += 1
        finally:
            region.close()


@dataclass(frozen=True, slots=True, init=False)
class CachePressure(WorkType):
    """Strided read-modify-write passes over a `size_kib` KiB buffer."""

    size_kib: int
    stride: int
    #: sched_yield after each pass (CacheYield): the cache is cold again when it resumes.
    yields_each_pass: ClassVar[bool] = False

    def __init__(self, size_kib: int = CACHE_PRESSURE_SIZE_KIB,
                 stride: int = CACHE_PRESSURE_STRIDE) -> None:
        kind = type(self).__name__  # CacheYield shares these parameters
        object.__setattr__(self, "size_kib", count(size_kib, f"{kind} size_kib"))
        object.__setattr__(self, "stride", count(stride, f"{kind} stride"))
        if self.stride > self.size_kib * 1024:
            raise ConfigError(
                f"{kind} stride = {stride} is larger than the buffer "
                f"({self.size_kib} KiB = {self.size_kib * 1024} bytes); hint: use a stride "
                "of at most size_kib * 1024, e.g. 64 (one cache line)")

    def run(self, loop: WorkLoop) -> None:
        buf = bytearray(self.size_kib * 1024)
        step, yields = self.stride, self.yields_each_pass
        while loop.running:
            buf[::step] = buf[::step].translate(_INCREMENT)
            loop.spin()
            if yields:
                loop.yield_(count=False)
            loop.iterations += 1


@dataclass(frozen=True, slots=True, init=False)
class CacheYield(CachePressure):
    """CachePressure's strided pass, then `sched_yield`; one pass is one work unit."""

    yields_each_pass: ClassVar[bool] = True
