"""The GDB remote protocol client (ktstr.vm.gdbstub): packet codec, stop replies, and the
client's stop/resume rules against a model of qemu 7.2's stub as measured (any byte
stops a running VM and is lost, a stop of any cause is reported, `?` drops watchpoints).
The real stub is exercised by tests/vm/test_watch.py."""

from __future__ import annotations

import socket

import pytest
from gdb_fakes import FakeQemu

from ktstr.vm.gdbstub import (
    GdbStub,
    GdbStubError,
    Packet,
    PacketReader,
    checksum,
    decode_body,
    encode_packet,
    error_code,
    parse_stop_reply,
)


def test_encode_packet_checksums_and_escapes():
    assert encode_packet(b"c") == b"$c#63"
    assert encode_packet(b"?") == b"$?#3f"
    assert encode_packet(b"Z2,ffffffff8327718c,4") == \
        b"$Z2,ffffffff8327718c,4#" + f"{checksum(b'Z2,ffffffff8327718c,4'):02x}".encode()
    raw = encode_packet(b"a$b#c}d*")
    assert raw.startswith(b"$a}\x04b}\x03c}]d}\x0a#")
    body = raw[1:raw.index(b"#")]
    assert int(raw[-2:], 16) == checksum(body)
    assert decode_body(body) == b"a$b#c}d*"


def test_decode_body_expands_run_length():
    assert decode_body(b"0* ") == b"0000"  # ' ' is 32: three more
    assert decode_body(b"ab*\"c") == b"abbbbbbc"  # '"' is 34: five more
    assert decode_body(b"*") == b"*"  # nothing to repeat


def test_packet_reader_splits_acks_packets_and_noise():
    r = PacketReader()
    assert r.feed(b"+$T02thread:01;#") == ["+"]  # incomplete packet waits
    got = r.feed(b"" + f"{checksum(b'T02thread:01;'):02x}".encode() + b"-xx$OK#9a")
    assert got == [Packet(b"T02thread:01;", True), "-", Packet(b"OK", True)]
    assert r.feed(b"$OK#00") == [Packet(b"OK", False)]  # bad checksum: reported, not decoded


def test_stop_replies():
    hit = parse_stop_reply("T05thread:02;watch:ffffffff8327718c;")
    assert hit is not None and hit.kind == "watch" and hit.watch == 0xffffffff8327718c
    assert hit.thread == 2 and hit.cpu == 1 and hit.access == "write"
    paused = parse_stop_reply("T02thread:01;")
    assert paused is not None and paused.kind == "paused" and paused.watch is None
    assert parse_stop_reply("T05thread:p1.03;awatch:10;").access == "access"  # type: ignore[union-attr]
    assert parse_stop_reply("T05thread:p1.03;").thread == 3  # type: ignore[union-attr]
    assert parse_stop_reply("W00").kind == "exit"  # type: ignore[union-attr]
    assert parse_stop_reply("T03thread:01;").kind == "other"  # type: ignore[union-attr]
    for not_stop in ("OK", "E22", "", "1", "PacketSize=1000", "Tzz"):
        assert parse_stop_reply(not_stop) is None
    assert error_code("E22") == 0x22 and error_code("OK") is None


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    qemu = FakeQemu(b)
    stub = GdbStub(a, timeout=2.0)
    yield stub, qemu
    b.shutdown(socket.SHUT_RDWR)
    qemu.thread.join(2.0)
    a.close()
    b.close()


def test_stopped_resumes_only_a_vm_it_stopped(pair):
    stub, qemu = pair
    with stub.stopped() as ours:
        assert ours and not qemu.running
        stub.insert_watchpoint(0x1000, 4)
    assert qemu.running and qemu.watch == {(0x1000, 4)}
    assert stub.next_stop(0.1) is None  # our own T02 is not an event
    qemu.stop()  # QMP stop: reported, and never undone by the client
    ev = stub.next_stop(2.0)
    assert ev is not None and ev.kind == "paused"
    with stub.stopped() as ours:
        assert not ours
        stub.remove_watchpoint(0x1000)
    assert not qemu.running and qemu.watch == set() and qemu.log.count("c") == 1


def test_a_hit_stays_stopped_until_cont(pair):
    stub, qemu = pair
    with stub.stopped():
        stub.insert_watchpoint(0xffffffff8327718c, 4)
    qemu.stop("T05thread:02;watch:ffffffff8327718c;")
    ev = stub.next_stop(2.0)
    assert ev is not None and ev.kind == "watch" and ev.cpu == 1
    with stub.stopped() as ours:  # arming more during a hit does not resume it
        assert not ours
    assert not qemu.running
    stub.cont()
    assert qemu.running
    stub.close()  # removes its watchpoints, leaves the VM running
    assert qemu.watch == set() and qemu.running and stub.watchpoints == {}


def test_errors_are_exceptions_not_hangs(pair):
    stub, qemu = pair
    with stub.stopped(), pytest.raises(GdbStubError, match="E22"):
        stub.command("z2,10,4")
    with pytest.raises(GdbStubError, match="did not acknowledge"):
        stub.command("qAttached", timeout=0.3)  # the VM runs: the packet is lost
    qemu.sock.shutdown(socket.SHUT_RDWR)
    ev = stub.next_stop(2.0) if stub.dead is None else None
    assert ev is None or ev.kind == "paused"
    with pytest.raises(GdbStubError, match="unusable"):
        for _ in range(20):
            stub.next_stop(0.1)
    with pytest.raises(GdbStubError, match="unusable"):
        stub.command("qAttached")
