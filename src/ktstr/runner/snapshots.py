"""The host's side of the guest's requests during a run: captures and scheduler writes.

A capture freezes every vCPU (QMP `stop`), reads the guest kernel from its RAM
files, and resumes (QMP `cont`, always, also when the read failed): the guest
sees no time pass (its clock stands still while stopped) and the state read is
one instant, not a smear over a running system. The freeze is measured on the
host's monotonic clock, kept in the capture as `frozen_ms`, and added to the
run's deadline (`SnapshotService.frozen_s`).

What a capture holds is ktstr.scenario.snapshot's capture dict. The runqueue
part is one `RqReader.sample()`, the monitor's own reader, so a capture and a
monitor sample cannot disagree on what a field means. The scheduler's maps and
globals come from ktstr.monitor.bpfstate (`scheduler_state`). A part that
cannot be read (the guest kernel not readable yet, no sched_ext scheduler
attached) is left out and said in "missing"; the capture itself still succeeds.

The guest kernel is the monitor's when it has opened one, else opened here on
demand (the monitor may be off: KTSTR_MONITOR=off), before the guest is stopped,
so its cost and that of the BPF layout (seconds the first time per kernel build)
are not freeze time.

Watch snapshots and `on_error` come from the VM's gdbstub (ktstr.monitor.watch): a
guest write of a watched symbol stops every vCPU, the capture is read then, under
the symbol's name, and the guest resumes. Slot 0 follows the attached scheduler's
`exit_kind` for the whole run, so a scheduler's error exit is captured as
"on_error" at the moment the kernel claims it, while its maps are still there.
A QMP capture and the arming of a watchpoint are not serialised: if they meet, the
capture may read a guest that the watch set resumed (a less coherent read, never a
guest left stopped, which holding one lock across both could cause).
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from ktstr.errors import KtstrError, MonitorUnavailable
from ktstr.monitor.bpfstate import bpf_layout, scheduler_state, write_scheduler_var
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.guestmem import GuestMemory
from ktstr.monitor.rqreader import RqReader
from ktstr.monitor.watch import ON_ERROR, WatchSet
from ktstr.runner.monitoring import RunMonitor
from ktstr.vm.gdbstub import GdbStub

log = logging.getLogger(__name__)

OPS = ("snapshot", "get_snapshot", "list_snapshots", "watch", "write_vars")

#: How often the watch set looks for a newly loaded scheduler to arm its error exit on
#: (one u64 read of scx_root): a scheduler failing sooner after its load is missed.
SCHEDULER_POLL_S = 0.05

#: Reads the attached scheduler's {"scheduler", "maps", "vars"} (bpfstate.scheduler_state).
StateReader = Callable[[GuestKernel], dict[str, Any]]
#: Writes one global and returns it read back (bpfstate.write_scheduler_var).
VarWriter = Callable[[GuestKernel, str, Any], Any]


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


def _new_capture(name: str) -> dict[str, Any]:
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


class SnapshotService:
    """Answers the guest's requests for one run (see ktstr.guest.protocol for the ops)."""

    def __init__(self, qmp: Callable[..., Any], memory_fds: list[int], nr_cpus: int,
                 monitor: RunMonitor | None = None, *,
                 gdbstub: Callable[[], GdbStub] | None = None,
                 read_state: StateReader = scheduler_state,
                 write_var: VarWriter = write_scheduler_var) -> None:
        """`gdbstub`: the VM's (Machine.gdbstub), for watches and on_error; None: none.
        `read_state`/`write_var`: bpfstate's, replaced only by unit tests."""
        self._qmp = qmp
        self._read_state = read_state
        self._write_var = write_var
        self._fds = list(memory_fds)
        self._nr_cpus = nr_cpus
        self._monitor = monitor
        self._mem: GuestMemory | None = None
        self._reader: RqReader | None = None
        self.store = SnapshotStore()
        self.frozen_s = 0.0  # every freeze of the run: the run's deadline moves by it
        self.scheduler_vars: dict[str, Any] = {}  # requested, read_back (or error)
        self._gdbstub = gdbstub
        self._watches: WatchSet | None = None
        self._open_lock = threading.RLock()  # the request loop and the watch starter
        self.watch_error = ""  # why watches (and on_error) are not available

    def close(self) -> None:
        """Remove every watchpoint (the guest keeps running) and drop the mapping."""
        with self._open_lock:
            watches, self._watches = self._watches, None
        if watches is not None:  # outside the lock: a hit being captured needs it to finish
            watches.close()
            if watches.error and not self.watch_error:
                self.watch_error = watches.error
        self._reader = None
        if self._mem is not None:
            self._mem.close()
            self._mem = None

    # -- requests -------------------------------------------------------------

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request; a failure is an error reply, never an exception."""
        rid, op = msg.get("id"), msg.get("op")
        try:
            body = self._serve(op, msg)
        except KtstrError as e:
            return {"type": "reply", "id": rid, "ok": False, "error": str(e)}
        except Exception as e:  # a bug here must not take the run down: the guest says it
            log.exception("request %r failed", op)
            return {"type": "reply", "id": rid, "ok": False,
                    "error": f"host failed on {op!r}: {type(e).__name__}: {e}"}
        return {"type": "reply", "id": rid, "ok": True, **body}

    def _serve(self, op: Any, msg: dict[str, Any]) -> dict[str, Any]:
        if op in ("snapshot", "get_snapshot"):
            name = msg.get("name")
            if not isinstance(name, str) or not name:
                raise KtstrError(f"{op}: snapshot name {name!r} is not a non-empty string")
            if op == "get_snapshot":
                return {"capture": self.store.get(name), "names": self.store.names()}
            capture = self.capture(name)
            return {"name": name, "frozen_ms": capture["frozen_ms"],
                    "hits": self.store.put(capture), "missing": capture["missing"]}
        if op == "list_snapshots":
            return {"names": self.store.names()}
        if op == "watch":
            symbol = msg.get("symbol")
            if not isinstance(symbol, str) or not symbol:
                raise KtstrError(f"watch: symbol {symbol!r} is not a non-empty string")
            watches = self.watches()
            slot = watches.add(symbol)
            armed = watches.slots[slot]
            return {"symbol": symbol, "slot": slot,
                    "address": armed.address if armed is not None else 0}
        if op == "write_vars":
            values = msg.get("vars")
            if not isinstance(values, dict):
                raise KtstrError(f"write_vars: vars {values!r} is not a dict")
            return {"values": self.write_vars(values)}
        raise KtstrError(f"unknown request {op!r}; the host serves {', '.join(OPS)}")

    # -- the guest kernel ------------------------------------------------------

    def _open(self) -> RqReader:
        """The runqueue reader (and through it the guest kernel), opened once."""
        with self._open_lock:
            return self._open_locked()

    def _open_locked(self) -> RqReader:
        if self._reader is None:
            kernel = self._monitor.kernel if self._monitor is not None else None
            if kernel is None:
                if self._mem is None:
                    self._mem = GuestMemory.from_fds(self._fds)
                kernel = GuestKernel.open(self._mem, self._nr_cpus)
            self._reader = RqReader(kernel)
            # The BPF offsets take seconds to derive the first time per kernel build: here,
            # not in the freeze. A failure shows again, and is said, in the capture.
            with contextlib.suppress(KtstrError, OSError, ValueError):
                bpf_layout(kernel)
        return self._reader

    def _frozen(self, read: Callable[[], Any]) -> tuple[Any, float]:
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

    # -- captures ----------------------------------------------------------------

    def capture(self, name: str) -> dict[str, Any]:
        capture = _new_capture(name)
        try:
            reader: RqReader | None = self._open()
        except (MonitorUnavailable, OSError, ValueError) as e:
            reader = None
            capture["missing"].append(f"guest kernel not readable: {e}")
        def read() -> float:
            began = time.monotonic()
            if reader is not None:
                self._read(reader, capture)
            return time.monotonic() - began

        read_s, frozen = self._frozen(read)
        capture["frozen_ms"] = frozen * 1e3
        capture["read_ms"] = read_s * 1e3  # of frozen_ms: the rest is QMP stop and cont
        return capture

    def capture_stopped(self, name: str) -> dict[str, Any]:
        """A capture while the guest is already stopped (a watchpoint hit): no QMP; its
        `frozen_ms` is the read, the time this capture added to the stop."""
        capture = _new_capture(name)
        began = time.monotonic()
        self._read(self._open(), capture)
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
        with self._open_lock:
            if self._watches is None:
                if self._gdbstub is None:
                    raise KtstrError("watch snapshots need the VM's gdbstub, which this "
                                     "run does not have")
                try:
                    kernel = self._open().k
                except (MonitorUnavailable, OSError, ValueError) as e:
                    raise KtstrError(f"cannot watch: guest kernel not readable: {e}") from None
                self._watches = WatchSet(kernel, self._gdbstub(), self._on_hit,
                                         poll_s=SCHEDULER_POLL_S).start()
            if self._watches.error:
                raise KtstrError(f"watches stopped: {self._watches.error}")
            return self._watches

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
        else:
            try:
                state = self._read_state(reader.k)
            except Exception as e:  # the runqueues read above are still worth returning
                missing.append(f"scheduler state not readable: {type(e).__name__}: {e}")
            else:
                capture.update(scheduler=state.get("scheduler"), maps=state.get("maps", {}),
                               vars=state.get("vars", {}))

    # -- scheduler variables -----------------------------------------------------------

    def write_vars(self, values: dict[str, Any]) -> dict[str, Any]:
        """Write each global of the attached scheduler with the guest stopped; the values
        read back. Recorded in `scheduler_vars` either way."""
        self.scheduler_vars = {"requested": dict(values)}
        if self._gdbstub is not None:  # a write can make the scheduler fail: watch its
            with contextlib.suppress(KtstrError):  # exit first (the poll may not have yet)
                self.watches().sync_exit_kind()
        try:
            back = self._write_vars(values)
        except KtstrError as e:
            self.scheduler_vars["error"] = str(e)
            raise
        self.scheduler_vars["read_back"] = back
        return back

    def _write_vars(self, values: dict[str, Any]) -> dict[str, Any]:
        try:
            kernel = self._open().k
        except (MonitorUnavailable, OSError, ValueError) as e:
            raise KtstrError(f"cannot write scheduler variables: guest kernel not readable: "
                             f"{e}") from None

        def write() -> dict[str, Any]:
            return {name: self._write_var(kernel, name, value)
                    for name, value in values.items()}
        try:
            back, _ = self._frozen(write)
        except (MonitorUnavailable, ValueError) as e:
            raise KtstrError(f"cannot write scheduler variables: {e}") from None
        return dict(back)
