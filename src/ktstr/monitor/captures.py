"""Captures of the guest kernel's scheduler state during a run: on request, or on a watch.

A capture on request freezes the guest (ktstr.monitor.guestaccess), reads it,
and resumes: the state read is one instant, not a smear over a running system.
The freeze is kept in the capture as `frozen_ms`. What a capture holds is the
capture dict ktstr.scenario.snapshot reads. The runqueue part is one
`RqReader.sample()`, the sampler's own reader, so a capture and a monitor sample
cannot disagree on what a field means. The scheduler's maps and globals come
from ktstr.monitor.bpfstate (`scheduler_state`). A part that cannot be read (the
guest kernel not readable yet, no sched_ext scheduler attached) is left out and
said in "missing"; the capture itself still succeeds.

Watch captures and `on_error` come from the VM's gdbstub (ktstr.monitor.watch):
a guest write of a watched symbol stops every vCPU, the capture is read then,
under the symbol's name, and the guest resumes. Slot 0 follows the attached
scheduler's `exit_kind` for the whole run, so a scheduler's error exit is
captured as "on_error" at the moment the kernel claims it, while its maps are
still there. A capture on request and the arming of a watchpoint are not
serialised: if they meet, the capture may read a guest that the watch set
resumed (a less coherent read, never a guest left stopped, which holding one
lock across both could cause).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from ktstr.errors import KtstrError, MonitorUnavailable
from ktstr.monitor.bpfstate import scheduler_state
from ktstr.monitor.guestaccess import GuestAccess
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.rqreader import RqReader
from ktstr.monitor.watch import ON_ERROR, WatchSet
from ktstr.vm.gdbstub import GdbStub

log = logging.getLogger(__name__)

#: How often the watch set looks for a newly loaded scheduler to arm its error exit on
#: (one u64 read of scx_root): a scheduler failing sooner after its load is missed.
SCHEDULER_POLL_S = 0.05

#: Reads the attached scheduler's {"scheduler", "maps", "vars"} (bpfstate.scheduler_state).
StateReader = Callable[[GuestKernel], dict[str, Any]]


class SnapshotStore:
    """The run's captures: the latest under each name and how many were taken."""

    def __init__(self) -> None:
        self._latest: dict[str, dict[str, Any]] = {}
        self._hits: dict[str, int] = {}
        self._lock = threading.Lock()  # watch hits arrive on the watch set's thread

    def put(self, capture: dict[str, Any]) -> int:
        """Keep `capture` as the latest under its name; returns the name's hit count."""
        name = str(capture["name"])
        with self._lock:
            self._hits[name] = self._hits.get(name, 0) + 1
            self._latest[name] = capture
            return self._hits[name]

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            capture = self._latest.get(name)
            return None if capture is None else {**capture, "hits": self._hits[name]}

    def names(self) -> list[str]:
        with self._lock:
            return list(self._latest)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every name's latest capture with its hits: RunResult.snapshots."""
        with self._lock:
            return {name: {**c, "hits": self._hits[name]} for name, c in self._latest.items()}


def new_capture(name: str) -> dict[str, Any]:
    """A capture before its read: "missing" collects the parts that could not be read."""
    return {"name": name, "taken_at": time.time(), "frozen_ms": 0.0, "missing": []}


def enable_state(kernel: GuestKernel) -> str:
    """`scx_enable_state_var` by its enum name ("SCX_ENABLED", ...); "unknown" when the
    kernel has no sched_ext."""
    addr = kernel.symbol("scx_enable_state_var")
    if addr is None:
        return "unknown"
    value = struct.unpack("<i", kernel.aspace.read(addr, 4))[0]
    names = {v: n for n, v in kernel.layout.enable_states.items()}
    return names.get(value, str(value))


class Captures:
    """The run's captures and watches; `store` keeps them, `watch_error` says why watches
    (and on_error) are not available."""

    def __init__(self, access: GuestAccess, gdbstub: Callable[[], GdbStub] | None,
                 read_state: StateReader = scheduler_state) -> None:
        """`gdbstub`: the VM's (Machine.gdbstub), for watches and on_error; None: none.
        `read_state`: bpfstate's, replaced only by unit tests."""
        self._access = access
        self._gdbstub = gdbstub
        self._read_state = read_state
        self._watches: WatchSet | None = None
        self.store = SnapshotStore()
        self.watch_error = ""

    def close(self) -> None:
        """Remove every watchpoint (the guest keeps running)."""
        with self._access.lock:
            watches, self._watches = self._watches, None
        if watches is not None:  # outside the lock: a hit being captured needs it to finish
            watches.close()
            if watches.error and not self.watch_error:
                self.watch_error = watches.error

    def capture(self, name: str) -> dict[str, Any]:
        """A capture under `name` with the guest frozen for it (not yet stored)."""
        capture = new_capture(name)
        try:
            reader: RqReader | None = self._access.reader()
        except (MonitorUnavailable, OSError, ValueError) as e:
            reader = None
            capture["missing"].append(f"guest kernel not readable: {e}")

        def read() -> float:
            began = time.monotonic()
            if reader is not None:
                self._read(reader, capture)
            return time.monotonic() - began

        read_s, frozen = self._access.frozen(read)
        capture["frozen_ms"] = frozen * 1e3
        capture["read_ms"] = read_s * 1e3  # of frozen_ms: the rest is QMP stop and cont
        return capture

    def capture_stopped(self, name: str) -> dict[str, Any]:
        """A capture while the guest is already stopped (a watchpoint hit): no QMP; its
        `frozen_ms` is the read, the time this capture added to the stop."""
        capture = new_capture(name)
        began = time.monotonic()
        self._read(self._access.reader(), capture)
        capture["frozen_ms"] = capture["read_ms"] = (time.monotonic() - began) * 1e3
        return capture

    # -- watches -----------------------------------------------------------------------

    def watch_errors(self) -> None:
        """Arm slot 0 on the attached scheduler's exit_kind, following scheduler loads,
        from a thread: opening the guest kernel may take seconds the first time per
        build. A failure is said in `watch_error`; the run goes on without on_error."""
        if self._gdbstub is None:
            self.watch_error = "this VM has no gdbstub"
            return
        threading.Thread(target=self._start_watching, name="ktstr-watch-start",
                         daemon=True).start()

    def _start_watching(self) -> None:
        try:
            self.watches()
        except (KtstrError, MonitorUnavailable, OSError, ValueError) as e:
            self.watch_error = str(e)
            log.warning("on_error capture not available: %s", e)

    def watches(self) -> WatchSet:
        """The run's watch set, started on first use (KtstrError when it cannot be)."""
        with self._access.lock:
            if self._watches is None:
                if self._gdbstub is None:
                    raise KtstrError("watch snapshots need the VM's gdbstub, which this "
                                     "run does not have")
                try:
                    kernel = self._access.reader().k
                except (MonitorUnavailable, OSError, ValueError) as e:
                    raise KtstrError(f"cannot watch: guest kernel not readable: {e}") from None
                self._watches = WatchSet(kernel, self._gdbstub(), self._on_hit,
                                         poll_s=SCHEDULER_POLL_S).start()
            if self._watches.error:
                raise KtstrError(f"watches stopped: {self._watches.error}")
            return self._watches

    def watch(self, symbol: str) -> dict[str, Any]:
        """Capture under `symbol` at each guest write of it; what was armed."""
        watches = self.watches()
        slot = watches.add(symbol)
        armed = watches.slots[slot]
        return {"symbol": symbol, "slot": slot,
                "address": armed.address if armed is not None else 0}

    def sync_exit_kind(self) -> None:
        """Make sure the attached scheduler's error exit is watched now (before a write
        that may make it fail); without a gdbstub, nothing to do."""
        if self._gdbstub is not None:
            self.watches().sync_exit_kind()

    def _on_hit(self, kind: str, symbol: str, address: int, value: int | str) -> None:
        """A watched write, with every vCPU stopped: capture under the symbol's name (or
        "on_error" for the scheduler's error exit) before the guest resumes."""
        name = ON_ERROR if kind == ON_ERROR else symbol
        capture = self.capture_stopped(name)
        capture["watch"] = {"kind": kind, "symbol": symbol, "address": address,
                            "value": value}
        self.store.put(capture)
        log.info("watch %s: %s = %s captured (%.1f ms)", kind, symbol, value,
                 capture["frozen_ms"])

    def _read(self, reader: RqReader, capture: dict[str, Any]) -> None:
        sample = reader.sample()
        capture["jiffies"] = sample.jiffies
        capture["rq"] = {str(c.cpu): {"nr_running": c.nr_running, "clock_ns": c.clock_ns,
                                      "scx_nr_running": c.scx_nr_running,
                                      "local_dsq_depth": c.local_dsq_depth,
                                      "curr_pid": c.curr_pid, "curr_comm": c.curr_comm}
                         for c in sample.cpus}
        capture["scx"] = {"attached": sample.attached, "ops_name": sample.ops_name,
                          "enable_state": enable_state(reader.k), "events": sample.events}
        missing = capture["missing"]
        if not sample.attached:
            missing.append("no sched_ext scheduler attached: no maps or vars")
            return
        try:
            state = self._read_state(reader.k)
        except Exception as e:  # the runqueues read above are still worth returning
            missing.append(f"scheduler state not readable: {type(e).__name__}: {e}")
        else:
            capture.update(scheduler=state.get("scheduler"), maps=state.get("maps", {}),
                           vars=state.get("vars", {}))
