"""One `MonitorSample` per call, from addresses worked out once.

The sampler calls `RqReader.sample()` every 100 ms without stopping the guest, so the
path is: per CPU, `struct.unpack_from` at precomputed (mapping, offset) pairs for the
runqueue fields; `rq->curr`'s pid and comm through a small cache of translated task
addresses; then `scx_root`, and, while a scheduler is attached, its ops name and the
per-CPU event counters, translated once per `scx_sched` (the struct is reallocated on
every load, so the cache is keyed by its address). Nothing is locked against the
guest: a sample is a look at values each written atomically, not one instant.

Also here, because it uses the same addresses: the read and write of the attached
scheduler's watchdog timeout (`scx_root->watchdog_timeout`, jiffies) that the
watchdog override applies.
"""

from __future__ import annotations

import mmap
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from ktstr.errors import MonitorUnavailable
from ktstr.monitor.guestkernel import TASK_COMM_LEN, GuestKernel
from ktstr.monitor.sample import CpuSample, MonitorSample

_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}
OPS_NAME_LEN = 128  # SCX_OPS_NAME_LEN
TASK_CACHE_MAX = 4096
Loc = tuple[mmap.mmap, int]


@dataclass(frozen=True, slots=True)
class _Attached:
    """What is worth translating once per loaded scheduler."""

    sch: int
    ops_name: str
    events: tuple[Loc | int, ...]  # per CPU: where its scx_event_stats is (or its address)


class RqReader:
    def __init__(self, kernel: GuestKernel, cpus: int | None = None) -> None:
        try:
            self._setup(kernel, cpus)
        except ValueError as e:  # a runqueue field straddling a page: not a layout we know
            raise MonitorUnavailable(f"cannot precompute the runqueue reads: {e}") from e

    def _setup(self, kernel: GuestKernel, cpus: int | None) -> None:
        self.k = kernel
        self.cpus = kernel.nr_cpus if cpus is None else min(cpus, kernel.nr_cpus)
        lay = kernel.layout
        self._fields = [f for f in ("rq.nr_running", "rq.clock", "rq.scx.nr_running",
                                    "rq.scx.local_dsq.nr", "rq.curr") if f in lay.fields]
        self._rq_locs: list[list[tuple[mmap.mmap, int, Callable[..., tuple[int, ...]]]]] = []
        for cpu in range(self.cpus):
            rq = kernel.rq(cpu)
            locs = []
            for f in self._fields:
                off, size = lay.fields[f]
                mm, pos = kernel.aspace.locate(rq + off, size)
                locs.append((mm, pos, struct.Struct("<" + _FMT[size]).unpack_from))
            self._rq_locs.append(locs)
        self._jiffies = kernel.aspace.locate(kernel.require("jiffies_64"), 8)
        self._pid_off = kernel.offset("task_struct.pid")
        self._comm_off = kernel.offset("task_struct.comm")
        self._tasks: dict[int, tuple[Loc, Loc]] = {}
        scx_root = kernel.symbol("scx_root")
        self._scx_root = kernel.aspace.locate(scx_root, 8) if scx_root is not None else None
        state = kernel.symbol("scx_enable_state_var")
        self._state = kernel.aspace.locate(state, 4) if state is not None else None
        self._enabled = kernel.layout.enable_states.get("SCX_ENABLED", 1)
        self._attached: _Attached | None = None
        # scx_event_stats is all s64: unpack it whole, pick each counter by its offset.
        events = sorted(kernel.layout.events.items(), key=lambda kv: kv[1])
        self._event_names = tuple(name for name, _ in events)
        self._event_slots = tuple(off // 8 for _, off in events)
        n_slots = events[-1][1] // 8 + 1 if events else 0
        self._n_slots = n_slots
        self._event_struct = struct.Struct(f"<{n_slots}q")
        self._index = 0

    # -- the hot path --------------------------------------------------------

    def sample(self) -> MonitorSample:
        t = time.monotonic()
        mm, pos = self._jiffies
        jiffies = struct.unpack_from("<Q", mm, pos)[0]
        cpus = []
        has_scx = len(self._fields) == 5
        for cpu, locs in enumerate(self._rq_locs):
            vals = [unpack(m, p)[0] for m, p, unpack in locs]
            curr = vals[-1]
            pid, comm = self._task(curr)
            if has_scx:
                nr, clock, scx_nr, dsq, _ = vals
            else:
                nr, clock, _ = vals
                scx_nr = dsq = 0
            cpus.append(CpuSample(cpu, nr, clock, scx_nr, dsq, pid, comm))
        attached, ops, events = self._scx()
        index, self._index = self._index, self._index + 1
        return MonitorSample(index=index, t=t, jiffies=jiffies, attached=attached,
                             cpus=tuple(cpus), events=events, ops_name=ops)

    def _task(self, task: int) -> tuple[int, str]:
        locs = self._tasks.get(task)
        if locs is None:
            try:
                locs = (self.k.aspace.locate(task + self._pid_off, 4),
                        self.k.aspace.locate(task + self._comm_off, TASK_COMM_LEN))
            except (MonitorUnavailable, ValueError):
                return -1, "?"  # a pointer caught mid-update; the next sample will do
            if len(self._tasks) >= TASK_CACHE_MAX:
                self._tasks.clear()
            self._tasks[task] = locs
        (pm, pp), (cm, cp) = locs
        pid = struct.unpack_from("<i", pm, pp)[0]
        comm = cm[cp:cp + TASK_COMM_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
        return pid, comm

    def _scx(self) -> tuple[bool, str, dict[str, int]]:
        if self._scx_root is None:
            return False, "", {}
        mm, pos = self._scx_root
        sch = struct.unpack_from("<Q", mm, pos)[0]
        if self._state is not None:
            smm, spos = self._state
            if struct.unpack_from("<i", smm, spos)[0] != self._enabled:
                sch = 0
        if not sch:
            self._attached = None
            return False, "", {}
        att = self._attached
        if att is None or att.sch != sch:
            try:
                att = self._attach(sch)
            except (MonitorUnavailable, ValueError):
                return False, "", {}  # freed or half-built scheduler struct: not attached
            self._attached = att
        sums = [0] * self._n_slots
        for loc in att.events:
            if isinstance(loc, tuple):
                vals = self._event_struct.unpack_from(loc[0], loc[1])
            else:
                vals = self._event_struct.unpack(self.k.aspace.read(loc,
                                                                    self._event_struct.size))
            for i, v in enumerate(vals):
                sums[i] += v
        return True, att.ops_name, {name: sums[slot] for name, slot
                                    in zip(self._event_names, self._event_slots, strict=True)}

    def _attach(self, sch: int) -> _Attached:
        k, lay = self.k, self.k.layout
        name = ""
        if lay.has("scx_sched.ops.name"):
            name = k.aspace.cstring(sch + lay.offset("scx_sched.ops.name"), OPS_NAME_LEN)
        events: list[Loc | int] = []
        if self._event_names and lay.has("scx_sched.pcpu", "scx_sched_pcpu.event_stats"):
            pcpu = k.aspace.u64(sch + lay.offset("scx_sched.pcpu"))
            for cpu in range(self.cpus):
                addr = k.aspace.per_cpu(pcpu, cpu) + lay.offset("scx_sched_pcpu.event_stats")
                try:
                    events.append(k.aspace.locate(addr, self._event_struct.size))
                except ValueError:  # straddles a page: read it the slow way
                    events.append(addr)
        return _Attached(sch, name, tuple(events))


# -- the watchdog timeout ---------------------------------------------------------


def _watchdog_addr(k: GuestKernel) -> int | None:
    """Where the attached scheduler's watchdog timeout lives: `scx_root->watchdog_timeout`
    (7.1+), the static `scx_watchdog_timeout` on older kernels, None when neither."""
    if k.layout.has("scx_sched.watchdog_timeout"):
        sch = k.scx_root()
        return sch + k.offset("scx_sched.watchdog_timeout") if sch else None
    return k.symbol("scx_watchdog_timeout")


def read_watchdog_timeout(k: GuestKernel) -> int | None:
    """The attached scheduler's watchdog timeout in jiffies; None when none is attached
    or this kernel has no such value."""
    addr = _watchdog_addr(k)
    return None if addr is None else k.aspace.u64(addr)


def write_watchdog_timeout(k: GuestKernel, jiffies: int) -> int | None:
    """Set the attached scheduler's watchdog timeout; returns the value read back
    (None: nothing to write to). The caller re-applies it after every scheduler load."""
    if not 0 < jiffies < 1 << 63:
        raise ValueError(f"watchdog timeout {jiffies} jiffies is out of range")
    addr = _watchdog_addr(k)
    if addr is None:
        return None
    k.aspace.write(addr, struct.pack("<Q", jiffies))
    return k.aspace.u64(addr)
