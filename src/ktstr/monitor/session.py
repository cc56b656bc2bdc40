"""The host-side monitor of one VM run: sampling, the watchdog, captures, variable writes.

`MonitorSession.open` starts it once the guest has its orders; the runner
hands it the guest's requests (`handle`) while the body runs and takes its
`MonitorReport` at the end (`finish`). Each job has its own module:
sampling and the watchdog override (ktstr.monitor.sampling), captures and
watches (ktstr.monitor.captures), scheduler variable writes
(ktstr.monitor.schedvars), all reaching the guest kernel through one
`GuestAccess` (so a capture reuses the sampler's opened kernel, and every
freeze adds to `frozen_s`, by which the run's deadline moves).

The requests it serves are listed in ktstr.protocol. A failure to serve one is
an error reply, never an exception: the guest raises it in the test body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ktstr.errors import KtstrError
from ktstr.monitor.bpfstate import scheduler_state, write_scheduler_var
from ktstr.monitor.captures import Captures, StateReader
from ktstr.monitor.guestaccess import GuestAccess
from ktstr.monitor.sampling import MonitorOutcome, RunMonitor, WatchdogOverride
from ktstr.monitor.schedvars import SchedulerVars, SchedulerVarWriter, VarWriter
from ktstr.vm.gdbstub import GdbStub
from ktstr.vm.machine import Machine

log = logging.getLogger(__name__)

OPS = ("snapshot", "get_snapshot", "list_snapshots", "watch", "write_vars")


@dataclass(frozen=True)
class MonitorReport:
    """What the session hands back at the end of the run."""

    monitor: MonitorOutcome  # the samples, or why there are none
    snapshots: dict[str, dict[str, Any]]  # the latest capture by name, with its hits
    scheduler_vars: SchedulerVars | None  # None: none were requested
    watch_error: str  # why watches (and on_error) were not available


class MonitorSession:
    def __init__(self, qmp: Callable[..., Any], memory_fds: list[int], nr_cpus: int, *,
                 sampler: RunMonitor | None = None, not_sampled: str = "",
                 gdbstub: Callable[[], GdbStub] | None = None,
                 read_state: StateReader = scheduler_state,
                 write_var: VarWriter = write_scheduler_var) -> None:
        """`sampler`: the run's started sampler, or None with `not_sampled` saying why.
        `read_state`/`write_var`: bpfstate's, replaced only by unit tests."""
        self._sampler = sampler
        self._not_sampled = not_sampled
        self.access = GuestAccess(qmp, memory_fds, nr_cpus,
                                  opened=lambda: sampler.kernel if sampler else None)
        self.captures = Captures(self.access, gdbstub, read_state)
        self.var_writer = SchedulerVarWriter(self.access, self.captures.sync_exit_kind, write_var)

    @classmethod
    def open(cls, machine: Machine, nr_cpus: int, *, not_sampled: str,
             watchdog: WatchdogOverride | None, watch_errors: bool) -> MonitorSession:
        """The session of a running VM: sampling unless `not_sampled` says why not,
        holding `watchdog` on each scheduler that attaches; `watch_errors`: capture a
        scheduler's error exit as "on_error"."""
        sampler = None
        if not not_sampled:
            try:
                sampler = RunMonitor(machine.memory_fds, machine.pid, machine.qmp, nr_cpus,
                                     watchdog=watchdog).start()
            except Exception as e:  # QMP said no, /proc unreadable: run without a monitor
                log.warning("monitor: not started: %s", e)
                not_sampled = f"not started: {e}"
        session = cls(machine.qmp, machine.memory_fds, nr_cpus, sampler=sampler,
                      not_sampled=not_sampled, gdbstub=machine.gdbstub)
        if watch_errors:
            session.captures.watch_errors()
        return session

    @property
    def frozen_s(self) -> float:
        """How long the session kept the guest stopped (captures, writes)."""
        return self.access.frozen_s

    def finish(self) -> MonitorReport:
        """Stop watching and sampling; what the run leaves behind."""
        self.captures.close()
        self.access.close()
        outcome = (self._sampler.stop() if self._sampler is not None
                   else MonitorOutcome.not_started(self._not_sampled))
        return MonitorReport(monitor=outcome, snapshots=self.captures.store.to_dict(),
                             scheduler_vars=self.var_writer.record,
                             watch_error=self.captures.watch_error)

    # -- requests ----------------------------------------------------------------------

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
        store = self.captures.store
        if op in ("snapshot", "get_snapshot"):
            name = _text(msg, op, "name", "snapshot name")
            if op == "get_snapshot":
                return {"capture": store.get(name), "names": store.names()}
            capture = self.captures.capture(name)
            return {"name": name, "frozen_ms": capture["frozen_ms"],
                    "hits": store.put(capture), "missing": capture["missing"]}
        if op == "list_snapshots":
            return {"names": store.names()}
        if op == "watch":
            return self.captures.watch(_text(msg, op, "symbol", "symbol"))
        if op == "write_vars":
            values = msg.get("vars")
            if not isinstance(values, dict):
                raise KtstrError(f"write_vars: vars {values!r} is not a dict")
            return {"values": self.var_writer.write(values)}
        raise KtstrError(f"unknown request {op!r}; the host serves {', '.join(OPS)}")


def _text(msg: dict[str, Any], op: str, key: str, what: str) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not value:
        raise KtstrError(f"{op}: {what} {value!r} is not a non-empty string")
    return value
