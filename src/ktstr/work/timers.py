"""Timer, IRQ and signal work types: timer and IRQ wakes, signal and preemption
pressure.

- `TimerLatency(interval_us)`: cyclictest's measuring loop. The worker sleeps in
  `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)` until an absolute deadline
  one interval after the previous one; the hrtimer fires, wakes the task, and
  the lateness (time read on return minus the deadline) is one wake-to-run
  latency sample. Absolute deadlines keep the period free of drift; a wake so
  late that it missed whole periods skips them (counted in `overruns`), as
  cyclictest does, rather than firing a burst of catch-up wakes.
- `IrqWake`: a UDP ping-pong over loopback between the two workers of a pair
  (group_size 2). A datagram sent on `lo` is queued to the per-CPU backlog and
  delivered by the NET_RX softirq, which wakes the partner blocked in
  `recvfrom`; each datagram carries the sender's `CLOCK_MONOTONIC` stamp, read
  just before `sendto`, and the woken side records `now - stamp`.
- `NetTraffic`: each worker sends raw Ethernet frames through an `AF_PACKET`
  socket on `lo` and receives them back through the same socket (the loopback
  device hands every transmitted frame to `netif_rx`: NET_RX softirq, then
  `packet_rcv`). A NIC's RX hardirq and NAPI poll are not exercised: a guest
  has no NIC to drive, and the worker says so in a note.
- `SignalStorm`: the two workers of a pair spin a burst, then
  `tgkill(partner, SIGUSR2)`; a Python handler counts what arrives.

Both network types bring `lo` up when it is down (the guest's init does not),
and say so in a note.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ktstr.errors import SystemError_
from ktstr.system.libc import Timespec, function, timer_slack_ns
from ktstr.system.net import IFF_UP, net_device_flags, net_devices
from ktstr.validators import count
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop, spin_batch
from ktstr.work.pairing import PairArena, Seat, pair_key

#: cyclictest's default interval (`-i 1000`).
TIMER_LATENCY_INTERVAL_US = 1000
#: Multiply-add steps of a `SignalStorm` burst between two signals.
SIGNAL_STORM_SPIN_ITERS = 1024
#: Longest single block in a receive before a worker re-checks its stop flag.
WAIT_SLICE_S = 0.05
#: Silence after which the `IrqWake` initiator re-sends (a datagram can be dropped).
IRQ_WAKE_RESEND_S = 0.5
#: Ethertype of `NetTraffic` frames: IEEE 802 local experimental 1.
NET_TRAFFIC_ETHERTYPE = 0x88B5
#: Bytes of one `NetTraffic` frame (the Ethernet minimum without FCS).
NET_TRAFFIC_FRAME_BYTES = 60

CLOCK_MONOTONIC = 1
TIMER_ABSTIME = 1
NSEC = 1_000_000_000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23

_clock_nanosleep = function("clock_nanosleep", ctypes.c_int)
_tgkill = function("tgkill", ctypes.c_int)

_MSG = struct.Struct("=qq")  # sequence number, sender's CLOCK_MONOTONIC ns
_FRAME = struct.Struct("!6s6sH")  # Ethernet header: dst, src, ethertype
_FRAME_BODY = struct.Struct("=Iq")  # sender pid, sender's CLOCK_MONOTONIC ns
_IFREQ_FLAGS = struct.Struct("16sh")


def sleep_until(ts: Timespec) -> None:
    """`clock_nanosleep` on CLOCK_MONOTONIC until the absolute time in `ts`.

    A signal (EINTR) resumes the same sleep: the deadline is absolute.
    """
    ref = ctypes.byref(ts)
    while True:
        rc = _clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ref, None)
        if rc == 0:
            return
        if rc != errno.EINTR:
            raise OSError(rc, f"clock_nanosleep: {os.strerror(rc)}")


class Periodic:
    """Absolute-deadline periodic wakes, cyclictest style, shared by the timer types.

    `wait()` sleeps until the next deadline and returns its lateness in ns; a
    wake late by whole periods skips them and counts them in `overruns`.
    """

    __slots__ = ("_ts", "interval_ns", "overruns", "target")

    def __init__(self, interval_ns: int) -> None:
        self.interval_ns = interval_ns
        self.overruns = 0
        self.target = time.monotonic_ns() + interval_ns
        self._ts = Timespec()

    def wait(self) -> tuple[int, int]:
        """Sleep to the next deadline; (now, now - deadline)."""
        ts = self._ts
        target = self.target
        ts.tv_sec, ts.tv_nsec = divmod(target, NSEC)
        sleep_until(ts)
        now = time.monotonic_ns()
        nxt = target + self.interval_ns
        if nxt <= now:
            missed = (now - nxt) // self.interval_ns + 1
            self.overruns += missed
            nxt += missed * self.interval_ns
        self.target = nxt
        return now, now - target


@dataclass(frozen=True, slots=True, init=False)
class TimerLatency(WorkType):
    """Absolute-deadline hrtimer wakes every `interval_us` µs; each wake's lateness is a
    wake-latency sample."""

    interval_us: int

    def __init__(self, interval_us: int = TIMER_LATENCY_INTERVAL_US) -> None:
        object.__setattr__(self, "interval_us",
                           count(interval_us, "TimerLatency interval_us"))

    def run(self, loop: WorkLoop) -> None:
        # cyclictest's loop: sleep, read the clock, account. Everything the body
        # touches is bound to a local first; nothing is allocated per wake beyond ints.
        interval = self.interval_us * 1000
        ts = Timespec()
        ref = ctypes.byref(ts)
        nanosleep = _clock_nanosleep
        clock = time.monotonic_ns
        resume = loop.resume_after_wait
        wakes = overruns = 0
        # Left as inherited, like cyclictest; reported because a CFS task's hrtimer may
        # fire up to this much late on purpose (the kernel zeroes it for RT tasks).
        slack = timer_slack_ns()
        target = clock() + interval
        try:
            while loop.running:
                ts.tv_sec, ts.tv_nsec = divmod(target, NSEC)
                rc = nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ref, None)
                if rc:
                    if rc == errno.EINTR:
                        continue
                    raise OSError(rc, f"clock_nanosleep: {os.strerror(rc)}")
                now = clock()
                resume(now - target, now=now)
                wakes += 1
                target += interval
                if target <= now:
                    missed = (now - target) // interval + 1
                    overruns += missed
                    target += missed * interval
        finally:
            loop.work_units += wakes
            loop.iterations += wakes
            loop.metrics.update(interval_us=float(self.interval_us), wakes=float(wakes),
                                overruns=float(overruns), timer_slack_ns=float(slack))


# -- loopback networking ------------------------------------------------------------


def ensure_loopback_up(loop: WorkLoop) -> None:
    """Bring `lo` up if it is down (the guest's init leaves it so); note that we did."""
    if net_device_flags("lo") & IFF_UP:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = _IFREQ_FLAGS.pack(b"lo", 0)
        try:
            flags = _IFREQ_FLAGS.unpack(fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
            if not flags & IFF_UP:
                fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, _IFREQ_FLAGS.pack(b"lo", flags | IFF_UP))
        except OSError as err:
            raise SystemError_(
                f"the loopback device lo is down and cannot be brought up ({err.strerror}); "
                "hint: run as root (CAP_NET_ADMIN) or `ip link set lo up` first") from err
    loop.note("lo was down: brought it up (SIOCSIFFLAGS IFF_UP)")


def _set_rcvtimeo(sock: socket.socket, secs: float) -> None:
    """`SO_RCVTIMEO`: the receive blocks in the kernel's recvfrom, bounded by `secs`."""
    tv = struct.pack("ll", int(secs), int((secs % 1) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)


def _udp_loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind(("127.0.0.1", 0))
    _set_rcvtimeo(sock, WAIT_SLICE_S)
    return sock


@dataclass(frozen=True, slots=True, init=False)
class IrqWake(WorkType):
    """UDP ping-pong over loopback: each receive is a wake from NET_RX softirq context."""

    _arena: PairArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self) -> None:
        object.__setattr__(self, "_arena", PairArena())

    def run(self, loop: WorkLoop) -> None:
        ensure_loopback_up(loop)
        arena = self._arena
        socks: list[socket.socket] = []

        def meet(seat: Seat) -> None:  # under the arena lock
            sock = _udp_loopback_socket()
            socks.append(sock)
            if seat.role == 0:  # the receiver publishes its port in the slot's stamp word
                arena.set_stamp(seat, sock.getsockname()[1])
            else:  # the sender connects to it
                sock.connect(("127.0.0.1", arena.stamp(seat)))

        try:
            with arena.seat(pair_key(), on_seat=meet) as seat:
                self._ping_pong(loop, socks[0], initiator=seat.role == 1)
        finally:
            for sock in socks:
                sock.close()

    def _ping_pong(self, loop: WorkLoop, sock: socket.socket, *, initiator: bool) -> None:
        """Receive (blocked in recvfrom), sample the wake, burst, answer; the initiator
        sends first. A message is accepted when its sequence number is above the last
        one sent, so a late duplicate after a re-send is dropped."""
        buf = bytearray(_MSG.size)
        pack, unpack = _MSG.pack_into, _MSG.unpack_from
        clock = time.monotonic_ns
        connected = initiator
        sent = 0
        received = 0
        last_sent_at = clock()
        if initiator:
            sent = 1
            pack(buf, 0, sent, clock())
            sock.send(buf)
        while loop.running:
            try:
                if connected:
                    sock.recv_into(buf)
                else:
                    _, addr = sock.recvfrom_into(buf)
                    sock.connect(addr)
                    connected = True
            except (BlockingIOError, TimeoutError):
                if initiator and clock() - last_sent_at > IRQ_WAKE_RESEND_S * 1e9:
                    sent += 2  # above anything the partner may have answered
                    last_sent_at = clock()
                    pack(buf, 0, sent, last_sent_at)
                    with contextlib.suppress(ConnectionRefusedError):
                        sock.send(buf)
                continue
            except ConnectionRefusedError:  # the partner's socket is gone: it stopped
                continue
            now = clock()
            seq, stamp = unpack(buf)
            if seq <= sent:
                continue
            received += 1
            loop.resume_after_wait(now - stamp, now=now)
            loop.spin()  # the turn's CPU burst: one work unit, short so wakes dominate
            loop.iterations += 1
            sent = seq + 1
            last_sent_at = clock()
            pack(buf, 0, sent, last_sent_at)
            with contextlib.suppress(ConnectionRefusedError):
                sock.send(buf)
        loop.metrics.update(datagrams_received=float(received))


@dataclass(frozen=True, slots=True)
class NetTraffic(WorkType):
    """AF_PACKET frames sent on `lo` and received back, one round trip per work unit."""

    def run(self, loop: WorkLoop) -> None:
        ensure_loopback_up(loop)
        nics = [n for n in net_devices() if n != "lo"]
        loop.note("NetTraffic runs on lo: " + (
            f"NICs {', '.join(nics)} are not used" if nics else "no virtio-net device in the guest")
            + ": no NIC RX hardirq or NAPI poll is exercised, only the NET_RX softirq "
            "(loopback backlog)")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 socket.htons(NET_TRAFFIC_ETHERTYPE))
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EACCES, errno.EAFNOSUPPORT):
                raise
            loop.note(f"AF_PACKET socket refused ({err.strerror}): UDP on lo instead")
            with _udp_loopback_socket() as udp:
                udp.connect(udp.getsockname())
                self._round_trips(loop, udp, 0)
            return
        with sock:
            sock.bind(("lo", NET_TRAFFIC_ETHERTYPE))
            with contextlib.suppress(OSError):  # kernels before 4.20 lack it; harmless
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            _set_rcvtimeo(sock, WAIT_SLICE_S)
            self._round_trips(loop, sock, _FRAME.size)

    def _round_trips(self, loop: WorkLoop, sock: socket.socket, body_at: int) -> None:
        """Send one frame (stamped just before the send), block until it comes back,
        sample the wake; frames of other workers (same ethertype) are skipped."""
        frame = bytearray(NET_TRAFFIC_FRAME_BYTES)
        if body_at:
            _FRAME.pack_into(frame, 0, b"\0" * 6, b"\0" * 6, NET_TRAFFIC_ETHERTYPE)
        rbuf = bytearray(2048)
        pack, unpack = _FRAME_BODY.pack_into, _FRAME_BODY.unpack_from
        clock = time.monotonic_ns
        me = os.getpid()
        sent = got = 0
        while loop.running:
            stamp = clock()
            pack(frame, body_at, me, stamp)
            sock.send(frame)
            sent += 1
            while loop.running:
                try:
                    n = sock.recv_into(rbuf)
                except (BlockingIOError, TimeoutError):
                    break  # lost: send another
                if n >= body_at + _FRAME_BODY.size:
                    pid, back = unpack(rbuf, body_at)
                    if pid == me and back == stamp:
                        now = clock()
                        got += 1
                        loop.resume_after_wait(now - stamp, now=now)
                        break
            loop.spin()
            loop.iterations += 1
        loop.metrics.update(frames_sent=float(sent), frames_received=float(got),
                            bytes_sent=float(sent * len(frame)))


# -- signals ------------------------------------------------------------------------


@contextlib.contextmanager
def exchange_pids(loop: WorkLoop, arena: PairArena) -> Iterator[tuple[Seat, int]]:
    """Hold a seat for the `with` block and learn the partner's pid through the
    slot's stamp word.

    Role 0 writes its pid when it opens the slot; role 1, joining under the same
    lock, reads it and writes its own; role 0 then waits for that. Yields
    (seat, partner pid), the pid 0 when stopped before a partner came.
    """
    me = os.getpid()
    partner = [0]

    def meet(seat: Seat) -> None:
        if seat.role == 1:
            partner[0] = arena.stamp(seat)
        arena.set_stamp(seat, me)

    with arena.seat(pair_key(), on_seat=meet) as seat:
        while not partner[0] and loop.running:
            seen = arena.stamp(seat)
            if seen != me:
                partner[0] = seen
            else:
                time.sleep(0.001)
        loop.resume_after_wait()  # waiting for the partner is not a scheduling gap
        yield seat, partner[0]


@dataclass(frozen=True, slots=True, init=False)
class SignalStorm(WorkType):
    """Paired workers spin a burst, then `tgkill(partner, SIGUSR2)`; arrivals are counted."""

    _arena: PairArena = field(init=False, compare=False, repr=False, hash=False)

    def __init__(self) -> None:
        object.__setattr__(self, "_arena", PairArena())

    def run(self, loop: WorkLoop) -> None:
        got = [0]

        def on_signal(signum: int, frame: object) -> None:
            got[0] += 1

        # Before the pid is published: SIGUSR2's default action would kill us.
        signal.signal(signal.SIGUSR2, on_signal)
        with exchange_pids(loop, self._arena) as (_, partner):
            sent = failed = 0
            x = 1
            try:
                while loop.running:
                    x = spin_batch(SIGNAL_STORM_SPIN_ITERS, x)
                    loop.spin()
                    loop.iterations += 1
                    if partner and _tgkill(partner, partner, signal.SIGUSR2) == 0:
                        sent += 1
                    elif partner:
                        failed += 1
                        if ctypes.get_errno() == errno.ESRCH:
                            partner = 0  # it has exited: nobody left to signal
                            loop.note("SignalStorm partner exited before this worker stopped")
            finally:
                # Ignore from here on: the partner may still fire while we write our report.
                signal.signal(signal.SIGUSR2, signal.SIG_IGN)
                loop.metrics.update(signals_sent=float(sent), signals_received=float(got[0]),
                                    signals_failed=float(failed))
