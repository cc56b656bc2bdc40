"""Writing the attached scheduler's globals for a run (`@ktstr_test(scheduler_vars=...)`).

The guest asks once its scheduler is attached and before the body runs; the
host writes each global with the guest frozen (ktstr.monitor.guestaccess) and
reads it back (ktstr.monitor.bpfstate.write_scheduler_var). What was requested
and what was read back, or why nothing was, is the run's `SchedulerVars`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ktstr.errors import KtstrError, MonitorUnavailable
from ktstr.monitor.bpfstate import write_scheduler_var
from ktstr.monitor.guestaccess import GuestAccess
from ktstr.monitor.guestkernel import GuestKernel

#: Writes one global and returns it read back (bpfstate.write_scheduler_var).
VarWriter = Callable[[GuestKernel, str, Any], Any]


@dataclass(frozen=True)
class SchedulerVars:
    """A run's scheduler_vars: requested, and read back (or the error that stopped them)."""

    requested: dict[str, Any] = field(default_factory=dict)
    read_back: dict[str, Any] | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requested": self.requested}
        if self.read_back is not None:
            out["read_back"] = self.read_back
        if self.error:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SchedulerVars | None:
        if not d:
            return None
        back = d.get("read_back")
        return cls(requested=dict(d.get("requested") or {}),
                   read_back=None if back is None else dict(back),
                   error=str(d.get("error", "")))


class SchedulerVarWriter:
    def __init__(self, access: GuestAccess, before_write: Callable[[], None] = lambda: None,
                 write_var: VarWriter = write_scheduler_var) -> None:
        """`before_write`: called first (the error exit gets watched, as a write can make
        the scheduler fail); `write_var`: bpfstate's, replaced only by unit tests."""
        self._access = access
        self._before_write = before_write
        self._write_var = write_var
        self.record: SchedulerVars | None = None

    def write(self, values: dict[str, Any]) -> dict[str, Any]:
        """Write each global with the guest stopped; the values read back. Recorded in
        `record` either way; KtstrError when they cannot be written."""
        self.record = SchedulerVars(requested=dict(values))
        with contextlib.suppress(KtstrError):
            self._before_write()
        try:
            back = self._write(values)
        except KtstrError as e:
            self.record = SchedulerVars(requested=dict(values), error=str(e))
            raise
        self.record = SchedulerVars(requested=dict(values), read_back=back)
        return back

    def _write(self, values: dict[str, Any]) -> dict[str, Any]:
        try:
            kernel = self._access.reader().k
        except (MonitorUnavailable, OSError, ValueError) as e:
            raise KtstrError(f"cannot write scheduler variables: guest kernel not readable: "
                             f"{e}") from None

        def write() -> dict[str, Any]:
            return {name: self._write_var(kernel, name, value)
                    for name, value in values.items()}
        try:
            back, _ = self._access.frozen(write)
        except (MonitorUnavailable, ValueError) as e:
            raise KtstrError(f"cannot write scheduler variables: {e}") from None
        return dict(back)
