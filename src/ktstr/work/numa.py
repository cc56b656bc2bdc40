"""NUMA churn: CPUs and memory rotated across nodes (affinity churn, NUMA locality
under migration).

- `NumaMigrationChurn(period_ms)`: every `period_ms` the worker's affinity moves
  to the CPUs of the next NUMA node (`/sys/devices/system/node/node<N>/cpulist`
  within the worker's starting mask), spinning in between: cross-node
  migrations through `sched_setaffinity` (`affine_move_task`), the wakeup and
  balance paths' node distances, and NUMA-balancing's view of a task that
  keeps changing node.
- `NumaWorkingSetSweep`: a private anonymous working set of
  `NUMA_SWEEP_SIZE_KIB` KiB is bound to the next memory node each iteration
  with `mbind(MPOL_BIND, MPOL_MF_MOVE)` (its pages migrate: `migrate_pages`,
  TLB shootdowns) and then every page is written (faults for pages not yet
  there). Every `NUMA_SWEEP_CHECK_EVERY` iterations `move_pages(2)` asks where
  the pages are, so the report says how many landed on the node asked for.

A guest with one node (or a kernel without NUMA) cannot migrate across nodes:
the types still do their work on the one node and say so with
`WorkLoop.note`.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

from ktstr.system import cpu
from ktstr.system.cpu import SYS_ROOT, numa_nodes
from ktstr.system.libc import syscall, syscall_nr
from ktstr.system.proc import task_status
from ktstr.topology import parse_cpulist
from ktstr.validators import milliseconds
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop

NUMA_MIGRATION_PERIOD_MS = 10.0
NUMA_SWEEP_SIZE_KIB = 2048
#: Iterations between two `move_pages` queries of where the working set is.
NUMA_SWEEP_CHECK_EVERY = 8
PAGE_BYTES = mmap.PAGESIZE

MPOL_BIND = 2
MPOL_MF_MOVE = 1 << 1
#: mbind(2) and move_pages(2) numbers: x86_64 has its own table, the generic one
#: (aarch64, riscv64) another.

_ULONG_BITS = ctypes.sizeof(ctypes.c_ulong) * 8

#: byte -> byte + 1 (mod 256): the write that touches each page.
_INCREMENT = bytes((b + 1) & 0xFF for b in range(256))


def node_cpu_masks(nodes: dict[int, frozenset[int]], allowed: set[int]) -> list[frozenset[int]]:
    """Each node's CPUs within `allowed`, nodes with none left out, in node order."""
    return [cpus & allowed for _, cpus in sorted(nodes.items()) if cpus & allowed]


def memory_nodes(root: Path = SYS_ROOT) -> list[int]:
    """Nodes that have memory and that this process may allocate on (its Mems_allowed)."""
    nodes = set(cpu.memory_nodes(root))
    allowed = parse_cpulist(task_status(os.getpid()).get("Mems_allowed_list", ""))
    nodes &= allowed or nodes
    return sorted(nodes)


@dataclass(frozen=True, slots=True, init=False)
class NumaMigrationChurn(WorkType):
    """Move the worker's affinity to the next NUMA node every `period_ms`, spinning between."""

    period_ms: float

    def __init__(self, period_ms: float = NUMA_MIGRATION_PERIOD_MS) -> None:
        object.__setattr__(self, "period_ms",
                           milliseconds(period_ms, "NumaMigrationChurn period_ms"))

    def run(self, loop: WorkLoop) -> None:
        period_s = self.period_ms / 1000
        start = set(os.sched_getaffinity(0))
        masks = node_cpu_masks(numa_nodes(), start) or [frozenset(start)]
        if len(masks) < 2:
            loop.note("one NUMA node among the worker's CPUs: NumaMigrationChurn re-pinned "
                      "within it, no cross-node migration")
        switches = 0
        i = 0
        while loop.running:
            mask = masks[i % len(masks)]
            i += 1
            try:
                os.sched_setaffinity(0, mask)
                switches += 1
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                # The cpuset shrank: keep the nodes that still have allowed CPUs.
                now = set(os.sched_getaffinity(0)) | set(mask)
                masks = node_cpu_masks(numa_nodes(), now & start) or masks
            loop.spin_for(period_s)
            loop.iterations += 1
        loop.metrics["node_switches"] = switches
        loop.metrics["nodes"] = len(masks)


class _Mbind:
    """mbind(2) to one node with MPOL_MF_MOVE, its arguments built once."""

    def __init__(self, addr: int, length: int, max_node: int) -> None:
        self.words = max_node // _ULONG_BITS + 1
        self.mask = (ctypes.c_ulong * self.words)()
        self.nr = syscall_nr("mbind")
        self.args = (ctypes.c_void_p(addr), ctypes.c_ulong(length), ctypes.c_int(MPOL_BIND))
        self.maxnode = ctypes.c_ulong(self.words * _ULONG_BITS + 1)
        self.flags = ctypes.c_uint(MPOL_MF_MOVE)

    def bind(self, node: int) -> int:
        """0, or the errno of the failed call (ENOSYS when no syscall number is known)."""
        if self.nr is None:
            return errno.ENOSYS
        for w in range(self.words):
            self.mask[w] = 0
        self.mask[node // _ULONG_BITS] = 1 << (node % _ULONG_BITS)
        rc = syscall(ctypes.c_long(self.nr), *self.args, self.mask, self.maxnode, self.flags)
        return 0 if rc == 0 else ctypes.get_errno()


class _Where:
    """move_pages(2) with no target nodes: the node of every page, in one call."""

    def __init__(self, addr: int, pages: int) -> None:
        self.nr = syscall_nr("move_pages")
        self.count = pages
        self.ptrs = (ctypes.c_void_p * pages)(*(addr + i * PAGE_BYTES for i in range(pages)))
        self.status = (ctypes.c_int * pages)()

    def on_node(self, node: int) -> int | None:
        """How many pages are on `node` (None when the query failed)."""
        if self.nr is None:
            return None
        rc = syscall(ctypes.c_long(self.nr), ctypes.c_int(0), ctypes.c_ulong(self.count),
                      self.ptrs, None, self.status, ctypes.c_int(0))
        if rc != 0:
            return None
        return self.status[:].count(node)


@dataclass(frozen=True, slots=True)
class NumaWorkingSetSweep(WorkType):
    """Bind the working set to the next memory node (moving it), then write every page."""

    def run(self, loop: WorkLoop) -> None:
        pages = NUMA_SWEEP_SIZE_KIB * 1024 // PAGE_BYTES
        size = pages * PAGE_BYTES
        region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        anchor = ctypes.c_char.from_buffer(region)
        try:
            self._sweep(loop, region, ctypes.addressof(anchor), pages)
        finally:
            del anchor  # the buffer export must go before the mapping can close
            region.close()

    def _sweep(self, loop: WorkLoop, region: mmap.mmap, addr: int, pages: int) -> None:
        nodes = memory_nodes()
        if len(nodes) < 2:
            loop.note(f"one memory node ({nodes}): NumaWorkingSetSweep bound and touched its "
                      "working set there, no cross-node page migration")
        binder = _Mbind(addr, pages * PAGE_BYTES, max(nodes))
        where = _Where(addr, pages)
        binds = failed = checked = on_target = 0
        i = 0
        while loop.running:
            node = nodes[i % len(nodes)]
            i += 1
            err = binder.bind(node)
            if err == 0:
                binds += 1
            else:
                failed += 1
                loop.note(f"mbind(MPOL_BIND, node {node}, MPOL_MF_MOVE) failed: "
                          f"{os.strerror(err)}; the working set was touched where it was")
                if err in (errno.ENOSYS, errno.EPERM):
                    nodes = nodes[:1]
            region[::PAGE_BYTES] = region[::PAGE_BYTES].translate(_INCREMENT)
            if err == 0 and loop.iterations % NUMA_SWEEP_CHECK_EVERY == 0:
                here = where.on_node(node)
                if here is not None:
                    checked += pages
                    on_target += here
            loop.spin()
            loop.iterations += 1
        loop.metrics["mbind_calls"] = binds
        loop.metrics["mbind_failures"] = failed
        loop.metrics["pages_checked"] = checked
        loop.metrics["pages_on_target"] = on_target
        loop.metrics["nodes"] = len(nodes)
