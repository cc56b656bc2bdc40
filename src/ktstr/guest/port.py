"""The guest end of the result port: find the virtio-serial device, exchange JSON lines."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ktstr.guest.protocol import PORT_NAME, decode, encode


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
    def __init__(self, dev: Path) -> None:
        self._fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
        self._buf = b""

    def send(self, msg: dict[str, Any]) -> None:
        data = encode(msg)
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

    def close(self) -> None:
        os.close(self._fd)
