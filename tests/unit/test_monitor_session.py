"""The request/reply channel and the host's monitor session, on fakes (no VM).

The guest end (GuestPort.request) talks over a socketpair to a thread playing the
host; the host's MonitorSession gets a recording QMP and a fake runqueue reader,
so the freeze protocol (stop, read, always cont, frozen time kept) is checked on
any machine. The real capture is proved by tests/vm/test_snapshot_capture.py.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any

import pytest

from ktstr.errors import KtstrError, MonitorUnavailable
from ktstr.guest.hostsnap import HostSnapshots
from ktstr.guest.port import GuestPort
from ktstr.monitor.captures import SnapshotStore
from ktstr.monitor.sample import CpuSample, MonitorSample
from ktstr.monitor.schedvars import SchedulerVars
from ktstr.monitor.session import MonitorSession


class FakeKernel:
    layout = type("L", (), {"enable_states": {"SCX_ENABLED": 2}})()

    def symbol(self, name: str) -> int | None:
        return None


class FakeReader:
    def __init__(self, attached: bool = True, fail: bool = False) -> None:
        self.k = FakeKernel()
        self.attached, self.fail, self.calls = attached, fail, 0

    def sample(self) -> MonitorSample:
        self.calls += 1
        if self.fail:
            raise ValueError("page table walk hit garbage")
        cpus = tuple(CpuSample(c, 1, 1000 * self.calls + c, 1, 0, 10 + c, "spin")
                     for c in range(2))
        return MonitorSample(0, 0.0, 77, self.attached, cpus, {"select_cpu_fallback": 1},
                             "qmap" if self.attached else "")


class Qmp:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, cmd: str, **args: Any) -> Any:
        self.calls.append(cmd)
        return {}


def no_state(k: Any) -> dict[str, Any]:
    return {"scheduler": "qmap", "maps": {}, "vars": {}}


def service(reader: FakeReader | None = None, read_state: Any = no_state,
            write_var: Any = None) -> tuple[MonitorSession, Qmp]:
    qmp = Qmp()
    svc = MonitorSession(qmp, [], 2, read_state=read_state,
                         write_var=write_var or (lambda k, n, v: v))
    svc.access._reader = reader or FakeReader()  # type: ignore[assignment]
    return svc, qmp


def test_store_keeps_the_latest_and_counts_hits():
    store = SnapshotStore()
    assert store.put({"name": "a", "v": 1}) == 1
    assert store.put({"name": "b", "v": 1}) == 1
    assert store.put({"name": "a", "v": 2}) == 2
    assert store.get("a") == {"name": "a", "v": 2, "hits": 2} and store.get("c") is None
    assert store.names() == ["a", "b"]
    assert store.to_dict()["b"]["hits"] == 1


def test_capture_freezes_reads_and_resumes():
    svc, qmp = service()
    reply = svc.handle({"type": "request", "id": 3, "op": "snapshot", "name": "a"})
    assert reply["type"] == "reply" and reply["id"] == 3 and reply["ok"], reply
    assert qmp.calls == ["stop", "cont"]
    assert reply["hits"] == 1 and reply["frozen_ms"] > 0
    cap = svc.captures.store.get("a")
    assert cap is not None and cap["rq"]["1"]["curr_pid"] == 11 and cap["jiffies"] == 77
    assert cap["scx"] == {"attached": True, "ops_name": "qmap", "enable_state": "unknown",
                          "events": {"select_cpu_fallback": 1}}
    assert cap["missing"] == [] and cap["scheduler"] == "qmap"
    assert svc.frozen_s == pytest.approx(cap["frozen_ms"] / 1e3)
    json.dumps(cap)  # it goes to the guest and the sidecar as is


def test_no_scheduler_still_gives_the_runqueues():
    svc, _ = service(FakeReader(attached=False))
    svc.handle({"type": "request", "id": 1, "op": "snapshot", "name": "a"})
    cap = svc.captures.store.get("a")
    assert cap is not None and set(cap["rq"]) == {"0", "1"}
    assert cap["missing"] == ["no sched_ext scheduler attached: no maps or vars"]


def test_a_failed_read_still_resumes_the_guest():
    svc, qmp = service(FakeReader(fail=True))
    reply = svc.handle({"type": "request", "id": 1, "op": "snapshot", "name": "a"})
    assert not reply["ok"] and "ValueError: page table walk hit garbage" in reply["error"]
    assert qmp.calls == ["stop", "cont"] and svc.frozen_s > 0
    assert svc.captures.store.names() == []


def test_an_unreadable_kernel_is_said_in_the_capture(monkeypatch):
    svc, qmp = service()
    svc.access._reader = None

    def unreadable() -> Any:
        raise MonitorUnavailable("no vmcoreinfo in guest memory yet")
    monkeypatch.setattr(svc.access, "reader", unreadable)
    reply = svc.handle({"type": "request", "id": 1, "op": "snapshot", "name": "early"})
    assert reply["ok"] and reply["missing"] == [
        "guest kernel not readable: no vmcoreinfo in guest memory yet"]
    assert qmp.calls == ["stop", "cont"]


def test_get_list_and_bad_requests():
    svc, _ = service()
    svc.handle({"id": 1, "op": "snapshot", "name": "a"})
    got = svc.handle({"id": 2, "op": "get_snapshot", "name": "a"})
    assert got["ok"] and got["capture"]["hits"] == 1 and got["names"] == ["a"]
    assert svc.handle({"id": 3, "op": "get_snapshot", "name": "z"})["capture"] is None
    assert svc.handle({"id": 4, "op": "list_snapshots"})["names"] == ["a"]
    bad = svc.handle({"id": 5, "op": "snapshot", "name": ""})
    assert not bad["ok"] and "not a non-empty string" in bad["error"]
    unknown = svc.handle({"id": 6, "op": "teleport"})
    assert not unknown["ok"] and "unknown request 'teleport'" in unknown["error"]
    assert "snapshot, get_snapshot" in unknown["error"]


def test_write_vars_frozen_and_recorded():
    written: list[tuple[str, Any]] = []

    def write(k: Any, name: str, value: Any) -> Any:
        if name == "slice_ns":
            raise KtstrError("'slice_ns' is in scx_qmap.rodata: read-only")
        written.append((name, value))
        return value * 2 if name == "doubled" else value
    svc, qmp = service(write_var=write)
    reply = svc.handle({"id": 1, "op": "write_vars", "vars": {"qa.x": 5, "doubled": 2}})
    assert reply["ok"] and reply["values"] == {"qa.x": 5, "doubled": 4}
    assert qmp.calls == ["stop", "cont"] and written == [("qa.x", 5), ("doubled", 2)]
    assert svc.var_writer.record == SchedulerVars(requested={"qa.x": 5, "doubled": 2},
                                            read_back={"qa.x": 5, "doubled": 4})
    reply = svc.handle({"id": 2, "op": "write_vars", "vars": {"slice_ns": 100}})
    assert not reply["ok"] and "read-only" in reply["error"]
    assert qmp.calls == ["stop", "cont"] * 2  # resumed after the refusal too
    assert svc.finish().scheduler_vars == SchedulerVars(
        requested={"slice_ns": 100}, error="'slice_ns' is in scx_qmap.rodata: read-only")


class FakeHostThread(threading.Thread):
    """The host end of the port: answers each request with the service."""

    def __init__(self, sock: socket.socket, svc: MonitorSession, stale: bool = False) -> None:
        super().__init__(daemon=True)
        self.sock, self.svc, self.stale = sock, svc, stale

    def run(self) -> None:
        f = self.sock.makefile("rwb")
        for line in f:
            msg = json.loads(line)
            if msg["type"] != "request":
                continue
            if self.stale:  # the late reply to a request the guest gave up on
                f.write(json.dumps({"type": "reply", "id": msg["id"] - 1, "ok": True}).encode()
                        + b"\n")
            f.write(json.dumps(self.svc.handle(msg)).encode() + b"\n")
            f.flush()


@pytest.mark.parametrize("stale", [False, True])
def test_guest_requests_over_the_port(stale):
    guest_end, host_end = socket.socketpair()

    def refuse(k: Any, name: str, value: Any) -> Any:
        raise KtstrError(f"no global {name!r}; it has: slice_ns")
    svc, _ = service(write_var=refuse)
    FakeHostThread(host_end, svc, stale).start()
    host = HostSnapshots(GuestPort(guest_end.fileno()))
    assert host.names() == []
    took = host.capture("a")
    assert took["name"] == "a" and took["hits"] == 1
    cap = host.get("a")
    assert cap is not None and cap["rq"]["0"]["curr_comm"] == "spin"
    assert host.get("b") is None and host.names() == ["a"]
    with pytest.raises(KtstrError, match="no global 'x'; it has: slice_ns"):
        host.write_vars({"x": 1})
    guest_end.close()
    host_end.close()


def test_port_send_is_whole_lines_from_many_threads():
    # A pipe, like the virtio-serial port, lets concurrent large writes interleave.
    r, w = os.pipe()
    port = GuestPort(w)
    big = "x" * 50000

    def spam(i: int) -> None:
        for _ in range(20):
            port.send({"type": "log", "msg": f"{i}{big}"})
    threads = [threading.Thread(target=spam, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    got: list[dict[str, Any]] = []
    with os.fdopen(r, "rb") as reader:
        for _ in range(80):
            got.append(json.loads(reader.readline()))
        for t in threads:
            t.join()
    assert sorted({m["msg"][0] for m in got}) == ["0", "1", "2", "3"]
    os.close(w)


def test_scheduler_state_is_merged_or_its_failure_said():
    """The scheduler's maps/vars join the capture; a failed read leaves the runqueues
    and says why."""
    state = {"scheduler": "qmap", "vars": {"nr_enqueued": 3},
             "maps": {"stats": {"type": "percpu_array", "entries": []}}}
    reads: list[Any] = [lambda k: state]
    svc, _ = service(read_state=lambda k: reads[0](k))
    svc.handle({"id": 1, "op": "snapshot", "name": "a"})
    cap = svc.captures.store.get("a")
    assert cap is not None and cap["vars"] == {"nr_enqueued": 3} and cap["missing"] == []
    assert cap["scheduler"] == "qmap" and "stats" in cap["maps"]

    def broken(k: Any) -> Any:
        raise IndexError("map_idr walk ran off a page")
    reads[0] = broken
    svc.handle({"id": 2, "op": "snapshot", "name": "b"})
    cap = svc.captures.store.get("b")
    assert cap is not None and cap["rq"] and "vars" not in cap
    assert cap["missing"] == ["scheduler state not readable: IndexError: map_idr walk ran off "
                              "a page"]


def test_a_watch_hit_is_captured_without_qmp_under_its_name():
    svc, qmp = service()
    svc.captures._on_hit("watch", "sysctl_sched_rr_timeslice", 0xffffffff8300, 105)
    svc.captures._on_hit("watch", "sysctl_sched_rr_timeslice", 0xffffffff8300, 106)
    svc.captures._on_hit("on_error", "scx_sched.exit_kind", 0xffff8880, "SCX_EXIT_ERROR_BPF")
    assert qmp.calls == []  # the watchpoint stopped the guest; gdb resumes it
    cap = svc.captures.store.get("sysctl_sched_rr_timeslice")
    assert cap is not None and cap["hits"] == 2 and cap["rq"]["0"]["curr_comm"] == "spin"
    assert cap["watch"] == {"kind": "watch", "symbol": "sysctl_sched_rr_timeslice",
                            "address": 0xffffffff8300, "value": 106}
    err = svc.captures.store.get("on_error")
    assert err is not None and err["watch"]["value"] == "SCX_EXIT_ERROR_BPF"
    assert err["scheduler"] == "qmap" and svc.frozen_s == 0.0


def test_watch_requests_without_a_gdbstub_say_so():
    svc, _ = service()
    reply = svc.handle({"id": 1, "op": "watch", "symbol": "jiffies_64"})
    assert not reply["ok"] and "gdbstub" in reply["error"], reply
    bad = svc.handle({"id": 2, "op": "watch", "symbol": 3})
    assert not bad["ok"] and "not a non-empty string" in bad["error"]
    svc.captures.watch_errors()
    assert svc.finish().watch_error == "this VM has no gdbstub"


def test_finish_hands_back_what_the_run_leaves_without_a_sampler():
    svc = MonitorSession(Qmp(), [], 2, not_sampled="disabled (KTSTR_MONITOR=off)",
                         read_state=no_state)
    svc.access._reader = FakeReader()  # type: ignore[assignment]
    svc.handle({"id": 1, "op": "snapshot", "name": "a"})
    report = svc.finish()
    assert report.monitor.to_dict() == {"available": False,
                                        "reason": "disabled (KTSTR_MONITOR=off)"}
    assert list(report.snapshots) == ["a"] and report.snapshots["a"]["hits"] == 1
    assert report.scheduler_vars is None and report.watch_error == ""
