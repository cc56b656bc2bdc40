"""The guest end of the result port: find the virtio-serial device, exchange JSON lines."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

from ktstr.errors import KtstrError
from ktstr.protocol import PORT_NAME, decode, encode


def find_port(name: str = PORT_NAME, sys_root: Path = Path("/sys"),
              timeout: float = 10.0) -> Path:
    """The /dev node of the named port; there is no udev to make /dev/virtio-ports links."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in sorted((sys_root / "class/virtio-ports").glob("vport*")):
            try:
                if (entry / "name").read_text().strip() == name:
                    return Path("/dev") / entry.name
            except OSError:
                continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"virtio-serial port {name!r} not found under "
                               f"{sys_root}/class/virtio-ports")
        time.sleep(0.05)  # the device may still be probing; there is no event to wait on


class GuestPort:
    """One JSON line per message, whole, from any thread (a logging handler may send
    while the body's thread waits for a reply)."""

    def __init__(self, dev: Path | int) -> None:
        """`dev`: the port's device node, or an open descriptor (tests use a socket)."""
        self._fd = dev if isinstance(dev, int) else os.open(dev, os.O_RDWR | os.O_CLOEXEC)
        self._buf = b""
        self._send_lock = threading.Lock()
        self._request_lock = threading.Lock()  # one request in flight: replies come in order
        self._ids = itertools.count(1)

    def send(self, msg: dict[str, Any]) -> None:
        data = encode(msg)
        with self._send_lock:
            while data:
                n = os.write(self._fd, data)
                data = data[n:]

    def recv(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            chunk = os.read(self._fd, 65536)
            if not chunk:
                time.sleep(0.01)  # host not connected yet: the port reads as EOF until it is
                continue
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return decode(line)

    def request(self, op: str, **args: Any) -> dict[str, Any]:
        """Ask the host for `op` and wait for its answer (see protocol.py for the ops);
        a refusal raises KtstrError with the host's message."""
        with self._request_lock:
            rid = next(self._ids)
            self.send({"type": "request", "id": rid, "op": op, **args})
            msg = self.recv()
            # The reply to a request abandoned mid-wait (a signal raised in the body's
            # thread) arrives later: skip it.
            while msg.get("type") == "reply" and isinstance(msg.get("id"), int) \
                    and msg["id"] < rid:
                msg = self.recv()
        if msg.get("type") != "reply" or msg.get("id") != rid:
            # Nothing else is sent to the guest after "go": anything else is a bug.
            raise KtstrError(f"host request {op!r}: expected reply {rid}, got {msg!r}")
        if not msg.get("ok"):
            raise KtstrError(str(msg.get("error") or f"the host refused {op!r}"))
        return msg

    def close(self) -> None:
        os.close(self._fd)
