"""The guest's `SnapshotControl`: captures are taken and kept by the host.

The host freezes the guest to read it, so a capture cannot be taken from
inside; the body's thread asks over the result port and blocks until the host
has resumed the guest and answered (ktstr.monitor.session serves it).
"""

from __future__ import annotations

from typing import Any

from ktstr.guest.port import GuestPort


class HostSnapshots:
    def __init__(self, port: GuestPort) -> None:
        self._port = port

    def capture(self, name: str) -> dict[str, Any]:
        return self._port.request("snapshot", name=name)

    def get(self, name: str) -> dict[str, Any] | None:
        capture = self._port.request("get_snapshot", name=name).get("capture")
        return None if capture is None else dict(capture)

    def names(self) -> list[str]:
        return [str(n) for n in self._port.request("list_snapshots").get("names", [])]

    def watch(self, symbol: str) -> dict[str, Any]:
        return self._port.request("watch", symbol=symbol)

    def write_vars(self, values: dict[str, Any]) -> dict[str, Any]:
        """Write the attached scheduler's globals; the values read back, by name."""
        return dict(self._port.request("write_vars", vars=values).get("values", {}))
