"""A model of qemu 7.2's gdbstub as measured (tests/vm/test_watch.py runs the real one)."""

from __future__ import annotations

import contextlib
import socket
import threading

from ktstr.vm.gdbstub import Packet, PacketReader, encode_packet


class FakeQemu:
    """qemu 7.2's gdbstub as measured: a model with a run state and watchpoints."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.running = True
        self.watch: set[tuple[int, int]] = set()
        self.log: list[str] = []
        self.reader = PacketReader()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def send(self, payload: str) -> None:
        self.sock.sendall(encode_packet(payload.encode()))

    def stop(self, reply: str = "T02thread:01;") -> None:  # QMP stop, a hit...
        self.running = False
        self.send(reply)

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # the test closed the socket
            self._loop()

    def _loop(self) -> None:
        while data := self.sock.recv(4096):
            if self.running:  # the first byte stops the VM and is lost
                self.stop()
                data = data[1:]
            for item in self.reader.feed(data):
                if isinstance(item, Packet):
                    self._packet(item.payload.decode())

    def _packet(self, p: str) -> None:
        # qemu acks first and acts after; acting first keeps the tests free of that race
        self.log.append(p)
        if p == "c":
            self.running = True
        self.sock.sendall(b"+")
        if p == "c":
            return  # no reply: the next stop is the answer
        if p == "?":
            self.watch.clear()
            self.send("T05thread:01;")
        elif p == "qAttached":
            self.send("1")
        elif p[:2] in ("Z2", "z2"):
            addr, length = (int(x, 16) for x in p[3:].split(","))
            if p[0] == "Z":
                self.watch.add((addr, length))
                self.send("OK")
            else:
                known = (addr, length) in self.watch
                self.watch.discard((addr, length))
                self.send("OK" if known else "E22")
        else:
            self.send("")
