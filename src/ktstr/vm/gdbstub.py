"""A client of qemu's gdbstub (the GDB remote serial protocol), for write watchpoints.

Only what watching guest kernel variables needs: packets (`$payload#xx`, two hex
digits of checksum, `}` escapes, `*` run-length encoding on the way in), acks (qemu
7.2 has no no-ack mode: every packet is acknowledged with `+`, a bad one with `-`),
`qSupported`, `?`, `c`, `Z2`/`z2` (write watchpoints) and stop replies.

What qemu does, measured on 7.2 under TCG:

- The stub is attached when its chardev opens. `ktstr.vm.machine` has qemu connect to
  our socket at launch, before the guest runs, so attaching stops nothing.
- Any byte received while the VM runs stops it (`vm_stop(PAUSED)`) and is consumed by
  that: a packet sent to a running VM is lost. Commands are therefore sent only while
  the VM is stopped; `stopped()` stops it first with `\\x03` and resumes it after, but
  only when it was running before.
- Every stop of the VM, whoever causes it, is reported to the client as a stop reply:
  a watchpoint hit as `T05thread:02;watch:ffffffff8327718c;` (signal 5, the vCPU's
  thread id, the address), a QMP `stop` (or our `\\x03`) as `T02thread:01;`, a guest
  shutdown as `T03...`. A reader thread turns them into `StopEvent`s. A hit leaves the
  VM stopped (run state "debug") until `cont()`; a QMP `stop` is QMP's to undo, so the
  client never resumes after one.

Every wait has a timeout; a dead socket or an `E NN` reply raises `GdbStubError`, and a
dead reader makes every later call raise at once instead of hanging.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

from ktstr.errors import KtstrError

log = logging.getLogger(__name__)

SIGINT, SIGTRAP = 2, 5
#: Write, read and access watchpoints are Z2, Z3 and Z4; only writes are used here.
WRITE_WATCH = 2
DEFAULT_TIMEOUT_S = 5.0
_INTERRUPT = b"\x03"
_ESCAPED = frozenset(b"$#}*")
T = TypeVar("T")


class GdbStubError(KtstrError):
    """The gdbstub refused a command, did not answer in time, or its socket died."""


# -- packets (pure) -----------------------------------------------------------------


def checksum(data: bytes | bytearray) -> int:
    return sum(data) & 0xFF


def encode_packet(payload: bytes) -> bytes:
    """`$payload#xx` with `$ # } *` escaped as `}` followed by the byte xor 0x20."""
    body = bytearray()
    for b in payload:
        if b in _ESCAPED:
            body += bytes((0x7D, b ^ 0x20))
        else:
            body.append(b)
    return b"$" + bytes(body) + b"#" + f"{checksum(body):02x}".encode()


def decode_body(body: bytes) -> bytes:
    """A received packet's payload: escapes undone, run-length runs expanded.

    `X*N` repeats X another `ord(N) - 29` times (GDB's RSP docs, "Binary Data"); the
    checksum covers the body as sent, so this runs after checking it."""
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        b = body[i]
        if b == 0x7D and i + 1 < n:
            out.append(body[i + 1] ^ 0x20)
            i += 2
        elif b == 0x2A and out and i + 1 < n:
            out += bytes((out[-1],)) * (body[i + 1] - 29)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Packet:
    payload: bytes
    ok: bool  # the checksum matched


class PacketReader:
    """Incremental parser of the byte stream from the stub: acks and packets."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Packet | str]:
        """Everything complete in the stream so far: "+" and "-" acks, `Packet`s.
        Bytes outside a packet that are not acks are dropped (line noise)."""
        self._buf += data
        out: list[Packet | str] = []
        buf = self._buf
        while buf:
            c = buf[0]
            if c in b"+-":
                out.append(chr(c))
                del buf[0]
                continue
            if c != 0x24:  # '$'
                start = buf.find(b"$")
                plus, minus = buf.find(b"+"), buf.find(b"-")
                cut = min((p for p in (start, plus, minus) if p >= 0), default=len(buf))
                del buf[:cut]
                continue
            hash_at = buf.find(b"#", 1)
            if hash_at < 0 or len(buf) < hash_at + 3:
                break
            body = bytes(buf[1:hash_at])
            try:
                ok = int(buf[hash_at + 1:hash_at + 3], 16) == checksum(body)
            except ValueError:
                ok = False
            out.append(Packet(decode_body(body) if ok else body, ok))
            del buf[:hash_at + 3]
        return out


# -- stop replies (pure) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopEvent:
    """One stop of the VM as the stub reported it."""

    signal: int
    thread: int | None = None  # the stub's thread id: vCPU index + 1
    watch: int | None = None  # the watched address written (a watchpoint hit)
    access: str = "write"  # "write", "read" ("rwatch") or "access" ("awatch")
    exited: bool = False  # W/X: the VM is gone
    raw: str = ""
    at: float = field(default=0.0, compare=False)  # time.monotonic() when it arrived

    @property
    def kind(self) -> str:
        """"watch" (a watchpoint hit: resume with `cont`), "paused" (a QMP `stop` or
        our interrupt: never resumed by us), "exit", or "other" (shutdown and the like)."""
        if self.exited:
            return "exit"
        if self.watch is not None:
            return "watch"
        if self.signal == SIGINT:
            return "paused"
        return "other"

    @property
    def cpu(self) -> int | None:
        """The vCPU that stopped (the stub numbers threads from 1)."""
        return None if self.thread is None else self.thread - 1


def parse_stop_reply(payload: str) -> StopEvent | None:
    """A `T`, `S`, `W` or `X` stop reply; None for anything else (OK, E NN, data)."""
    if len(payload) < 3 or payload[0] not in "TSWX":
        return None
    try:
        sig = int(payload[1:3], 16)
    except ValueError:
        return None
    if payload[0] in "WX":
        return StopEvent(sig, exited=True, raw=payload)
    thread = watch = None
    access = "write"
    if payload[0] == "T":
        for item in payload[3:].split(";"):
            key, sep, value = item.partition(":")
            if not sep:
                continue
            try:
                if key == "thread":
                    # p<pid>.<tid> in multiprocess mode; the last part is the thread
                    thread = int(value.rpartition(".")[2], 16)
                elif key in ("watch", "rwatch", "awatch"):
                    watch = int(value, 16)
                    access = {"watch": "write", "rwatch": "read", "awatch": "access"}[key]
            except ValueError:
                return None
    return StopEvent(sig, thread, watch, access, False, payload)


def error_code(reply: str) -> int | None:
    """`E NN` replies: the errno-like code; None for anything else."""
    if len(reply) == 3 and reply[0] == "E":
        try:
            return int(reply[1:], 16)
        except ValueError:
            return None
    return None


# -- the client ---------------------------------------------------------------------


class GdbStub:
    """A connected gdbstub. Thread-safe: commands are serialised by a lock; stop replies
    are queued by the reader thread for `next_stop`.

    The socket is shared with qemu for the VM's life; `close()` removes this client's
    watchpoints and leaves the VM running, `abandon()` (the VM is going away) only stops
    the reader.
    """

    def __init__(self, sock: socket.socket, *, name: str = "ktstr-gdb",
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._sock = sock
        self.timeout = timeout
        self._lock = threading.RLock()
        self._acks: queue.Queue[str] = queue.Queue()
        self._replies: queue.Queue[str] = queue.Queue()
        self._stops: queue.Queue[StopEvent] = queue.Queue()
        # A `?` was sent (_query_sent) and acknowledged (_want_stop_reply): the next stop
        # reply answers it. A stop reply before the ack is a real stop (the stream is
        # ordered: qemu acks and answers a packet in one go).
        self._query_sent = False
        self._want_stop_reply = False
        # stopped(): between our \x03 and the ack of the qAttached after it, a T02 is
        # the stop we caused. Decided on the reader thread, so a concurrent consumer
        # of stop events cannot take it.
        self._interrupt_window = False
        self._interrupted = False
        self._parser = PacketReader()
        self.dead: str | None = None  # why the reader stopped
        self.watchpoints: dict[int, int] = {}  # address -> length, as inserted
        self.supported: dict[str, str] = {}
        self._reader = threading.Thread(target=self._read, name=name, daemon=True)
        self._reader.start()

    # -- the reader --------------------------------------------------------------

    def _read(self) -> None:
        try:
            while chunk := self._sock.recv(4096):
                for item in self._parser.feed(chunk):
                    self._dispatch(item)
            self.dead = "qemu closed the gdbstub socket"
        except OSError as e:
            self.dead = f"the gdbstub socket failed: {e}"
        self._acks.put("")  # wake every waiter: they see self.dead
        self._replies.put("")
        self._stops.put(StopEvent(0, exited=True, raw=""))

    def _dispatch(self, item: Packet | str) -> None:
        if isinstance(item, str):
            if item == "+" and self._query_sent:
                self._query_sent, self._want_stop_reply = False, True
            if item == "+":
                self._interrupt_window = False
            self._acks.put(item)
            return
        if not item.ok:
            log.debug("gdbstub packet with a bad checksum: %r", item.payload[:80])
            self._write(b"-")
            return
        self._write(b"+")
        text = item.payload.decode("ascii", "replace")
        stop = parse_stop_reply(text)
        if stop is not None and not self._want_stop_reply:
            log.debug("gdbstub stop: %s", text)
            stop = replace(stop, at=time.monotonic())
            if self._interrupt_window and stop.kind == "paused":
                self._interrupted = True  # our own \x03: not an event for anyone
            else:
                self._stops.put(stop)
        else:
            self._want_stop_reply = False
            self._replies.put(text)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(data)

    def _check(self) -> None:
        if self.dead is not None:
            raise GdbStubError(f"gdbstub unusable: {self.dead}")

    # -- commands (the VM must be stopped: see the module docstring) ---------------

    def command(self, payload: str, timeout: float | None = None) -> str:
        """Send one packet and return the stub's reply; `E NN` raises GdbStubError."""
        with self._lock:
            self._check()
            wait = self.timeout if timeout is None else timeout
            _drain(self._acks)
            _drain(self._replies)
            self._query_sent, self._want_stop_reply = payload == "?", False
            packet = encode_packet(payload.encode())
            for _attempt in range(3):
                self._sock.sendall(packet)
                ack = _get(self._acks, wait)
                self._check()
                if ack == "+":
                    break
                if ack is None:
                    raise GdbStubError(f"gdbstub did not acknowledge {payload!r} within "
                                       f"{wait:g}s (is the VM running? commands reach the "
                                       "stub only while it is stopped)")
            else:
                raise GdbStubError(f"gdbstub rejected {payload!r} three times (bad checksum)")
            reply = _get(self._replies, wait)
            self._check()
            if reply is None:
                raise GdbStubError(f"gdbstub did not answer {payload!r} within {wait:g}s")
            code = error_code(reply)
            if code is not None:
                raise GdbStubError(f"gdbstub refused {payload!r}: E{code:02x}")
            return reply

    def query_supported(self) -> dict[str, str]:
        reply = self.command("qSupported:multiprocess-;swbreak+;hwbreak+")
        feats: dict[str, str] = {}
        for item in reply.split(";"):
            if "=" in item:
                k, v = item.split("=", 1)
                feats[k] = v
            elif item:
                feats[item.rstrip("+-?")] = item[-1] if item[-1] in "+-?" else ""
        self.supported = feats
        return feats

    def halt_reason(self) -> StopEvent:
        """`?`: why the VM is stopped (qemu answers SIGTRAP whatever the cause).

        Beware: qemu takes `?` for a debugger's first connect and removes every
        breakpoint and watchpoint, so this forgets them too."""
        reply = self.command("?")
        self.watchpoints.clear()
        stop = parse_stop_reply(reply)
        if stop is None:
            raise GdbStubError(f"gdbstub answered '?' with {reply!r}, not a stop reply")
        return stop

    def insert_watchpoint(self, address: int, length: int) -> None:
        """`Z2,addr,len`: stop every vCPU after a guest write to [address, address+len)."""
        with self._lock:
            reply = self.command(f"Z{WRITE_WATCH},{address:x},{length:x}")
            if reply != "OK":
                raise GdbStubError(f"gdbstub cannot set a write watchpoint at {address:#x} "
                                   f"(len {length}): reply {reply!r} (empty: unsupported)")
            self.watchpoints[address] = length

    def remove_watchpoint(self, address: int) -> None:
        with self._lock:
            length = self.watchpoints.pop(address, None)
            if length is None:
                return
            reply = self.command(f"z{WRITE_WATCH},{address:x},{length:x}")
            if reply != "OK":
                raise GdbStubError(f"gdbstub cannot remove the watchpoint at {address:#x}: "
                                   f"reply {reply!r}")

    def cont(self) -> None:
        """`c`: resume every vCPU. No reply: the next stop arrives as a StopEvent."""
        with self._lock:
            self._check()
            _drain(self._acks)
            self._sock.sendall(encode_packet(b"c"))
            ack = _get(self._acks, self.timeout)
            self._check()
            if ack != "+":
                raise GdbStubError(f"gdbstub did not acknowledge 'c' within {self.timeout:g}s")

    # -- stopping and resuming --------------------------------------------------------

    @contextlib.contextmanager
    def stopped(self) -> Iterator[bool]:
        """Run the body with the VM stopped; yields whether this call stopped it.

        `\\x03` stops a running VM (qemu then sends `T02`) and is ignored by a stopped
        one; the `qAttached` after it is answered only once the VM is stopped, and the
        stream is ordered, so a `T02` arriving before that answer is ours (`?` would do
        the same but makes qemu drop every watchpoint). Only then is the VM
        resumed afterwards: a VM stopped by QMP or at a watchpoint stays as it was.
        Our own `T02` is not queued as a stop event; a hit racing with it is. (A QMP
        `stop` landing in the same few milliseconds is taken for ours: serialise QMP
        stops with watch arming where that matters.)
        """
        with self._lock:
            self._check()
            self._interrupted = False
            self._interrupt_window = True  # closed by the reader at qAttached's ack
            try:
                self._sock.sendall(_INTERRUPT)
                self.command("qAttached")
            finally:
                self._interrupt_window = False
            we_stopped = self._interrupted
            try:
                yield we_stopped
            finally:
                if we_stopped and self.dead is None:
                    self.cont()

    def next_stop(self, timeout: float) -> StopEvent | None:
        """The next stop of the VM, or None after `timeout` seconds without one."""
        if self.dead is not None and self._stops.empty():
            raise GdbStubError(f"gdbstub unusable: {self.dead}")
        ev = _get(self._stops, timeout)
        if ev is not None and ev.exited and not ev.raw:
            self._stops.put(ev)  # the reader's end marker: keep it for later callers
            raise GdbStubError(f"gdbstub unusable: {self.dead}")
        return ev

    def close(self) -> None:
        """Remove this client's watchpoints; the VM is left running if it was."""
        with self._lock:
            if self.dead is None and self.watchpoints:
                with self.stopped():
                    for addr in list(self.watchpoints):
                        self.remove_watchpoint(addr)

    def abandon(self) -> None:
        """The VM is going away: stop reading (its socket is closed by the machine)."""
        self.dead = self.dead or "the VM was shut down"
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)


def _get(q: queue.Queue[T], timeout: float) -> T | None:
    try:
        return q.get(timeout=max(0.0, timeout))
    except queue.Empty:
        return None


def _drain(q: queue.Queue[str]) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            q.get_nowait()



