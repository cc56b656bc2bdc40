"""Watch validation and slot rules (ktstr.monitor.watch): symbols named verbatim, in
writable data, 4-byte aligned, at most 3 user watches with slot 0 kept for the
scheduler's exit_kind, which fires "on_error" only for error-range values. The kernel is
a table and a dict of memory; the stub is the model of qemu's in gdb_fakes."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from gdb_fakes import FakeQemu

from ktstr.errors import ConfigError
from ktstr.monitor.symtab import SymbolTable
from ktstr.monitor.watch import (
    EXIT_KIND_FIELD,
    WatchSet,
    check_watch_symbol,
)
from ktstr.vm.gdbstub import GdbStub

K = 0xffffffff80000000
SYMS = {
    "_stext": (K + 0x1000000, "T"), "_etext": (K + 0x2000000, "T"),
    "schedule": (K + 0x1001000, "T"),
    "__start_rodata": (K + 0x2400000, "D"), "__end_rodata": (K + 0x3000000, "T"),
    "__start_ro_after_init": (K + 0x2800000, "D"),
    "__end_ro_after_init": (K + 0x2900000, "D"),
    "ro_thing": (K + 0x2800010, "d"), "a_string": (K + 0x2400100, "r"),
    "_sdata": (K + 0x3200000, "T"), "_edata": (K + 0x3500000, "T"),
    "sysctl_sched_rr_timeslice": (K + 0x3200740, "t"), "sched_rr_timeslice": (K + 0x320074c, "t"),
    "odd_byte": (K + 0x3200751, "d"), "vm_swappiness": (K + 0x3300000, "T"),
    "__bss_start": (K + 0x3e50000, "B"), "__bss_stop": (K + 0x4200000, "B"),
    "scx_root": (K + 0x3eb4590, "B"), "w1": (K + 0x3e60000, "b"), "w2": (K + 0x3e60004, "b"),
    "w3": (K + 0x3e60008, "b"), "w4": (K + 0x3e6000c, "b"),
    "__per_cpu_start": (K + 0x3e0c000, "D"), "__per_cpu_end": (K + 0x3e42000, "D"),
    "runqueues": (K + 0x3e3e280, "D"),
}
TABLE = SymbolTable("f8da1e46", SYMS)


def test_writable_aligned_variables_pass():
    assert check_watch_symbol(TABLE, "sysctl_sched_rr_timeslice") == K + 0x3200740
    assert check_watch_symbol(TABLE, "scx_root") == K + 0x3eb4590  # .bss


@pytest.mark.parametrize(("symbol", "says"), [
    ("sysctl_sched_rr_timeslice_ms", r"not in this kernel's kallsyms.*sysctl_sched_rr_timeslice"),
    ("SCHEDULE", "not in this kernel's kallsyms"),
    ("schedule", "a function"),
    ("runqueues", "per-CPU"),
    ("ro_thing", "read-only after boot"),
    ("a_string", "read-only data"),
    ("odd_byte", "not 4-byte aligned"),
    (" scx_root", "surrounding spaces"),
    ("", "empty"),
])
def test_bad_symbols_name_the_value_and_the_fix(symbol, says):
    with pytest.raises(ConfigError, match=says) as e:
        check_watch_symbol(TABLE, symbol)
    assert repr(symbol) in str(e.value) and "hint:" in str(e.value)


def test_symbol_table_round_trips_and_relocates():
    again = SymbolTable.from_text("x", TABLE.to_text())
    assert again.symbols == SYMS
    assert again.address("scx_root", 0x2000000) == K + 0x3eb4590 + 0x2000000
    assert again.address("nope", 0) is None


# -- WatchSet over the stub model ------------------------------------------------------

EXIT_KINDS = {"SCX_EXIT_NONE": 0, "SCX_EXIT_DONE": 1, "SCX_EXIT_UNREG": 64,
              "SCX_EXIT_ERROR": 1024, "SCX_EXIT_ERROR_BPF": 1025}
SCH = 0xffff888009735800
EXIT_OFF = 848


class FakeKernel:
    def __init__(self) -> None:
        self.mem: dict[int, int] = {}
        self.root = 0
        self.info = SimpleNamespace(kernel_offset=0, osrelease="7.2.13")
        self.layout = SimpleNamespace(exit_kinds=EXIT_KINDS,
                                      has=lambda *p: True)
        self.aspace = SimpleNamespace(u32=lambda a: self.mem.get(a, 0))

    def symtab(self) -> SymbolTable:
        return TABLE

    def offset(self, path: str) -> int:
        assert path == EXIT_KIND_FIELD
        return EXIT_OFF

    def scx_root(self) -> int:
        return self.root


@pytest.fixture
def rig():
    a, b = socket.socketpair()
    qemu = FakeQemu(b)
    kernel = FakeKernel()
    hits: list[tuple[str, str, int, int | str]] = []
    ws = WatchSet(kernel, GdbStub(a, timeout=2.0),  # type: ignore[arg-type]
                  lambda *h: hits.append(h), follow_scheduler=False)
    yield ws, qemu, kernel, hits
    b.shutdown(socket.SHUT_RDWR)
    qemu.thread.join(2.0)
    a.close()
    b.close()


def test_at_most_three_user_watches_slot_zero_reserved(rig):
    ws, qemu, _k, _h = rig
    assert [ws.add(s) for s in ("w1", "w2", "w3")] == [1, 2, 3]
    assert ws.add("w2") == 2  # already watched
    with pytest.raises(ConfigError, match=r"at most 3 watches.*slot 0 is reserved.*w1, w2, w3"):
        ws.add("w4")
    assert len(qemu.watch) == 3 and qemu.running
    ws.remove(2)
    assert ws.add("w4") == 2
    ws.close()
    assert qemu.watch == set() and qemu.running


def test_a_hit_reads_the_new_value_and_resumes(rig):
    ws, qemu, k, hits = rig
    ws.add("vm_swappiness")
    k.mem[K + 0x3300000] = 77
    qemu.stop(f"T05thread:02;watch:{K + 0x3300000:x};")
    hit = ws.handle(ws.stub.next_stop(2.0))
    assert hits == [("watch", "vm_swappiness", K + 0x3300000, 77)]
    assert hit is not None and hit.cpu == 1 and qemu.running
    qemu.stop()  # a QMP stop: counted, not resumed
    assert ws.handle(ws.stub.next_stop(2.0)) is None
    assert ws.pauses == 1 and not qemu.running


def test_exit_kind_fires_on_error_only_for_errors_and_rearms_per_scheduler(rig):
    ws, qemu, k, hits = rig
    word = SCH + EXIT_OFF
    k.root = SCH
    ws.sync_exit_kind()
    assert ws.slots[0] is not None and (word, 4) in qemu.watch
    k.mem[word] = 64  # a clean unload (SIGINT): SCX_EXIT_UNREG
    qemu.stop(f"T05thread:01;watch:{word:x};")
    assert ws.handle(ws.stub.next_stop(2.0)) is None
    assert hits == [] and ws.exits == [(SCH, "SCX_EXIT_UNREG")] and ws.slots[0] is None
    assert qemu.watch == set() and qemu.running
    ws.sync_exit_kind()  # same scheduler, exit claimed: not re-armed
    assert ws.slots[0] is None
    k.root = 0
    ws.sync_exit_kind()
    k.root, k.mem[word] = SCH, 0  # a new scheduler at the old address
    ws.sync_exit_kind()
    assert ws.slots[0] is not None
    qemu.stop(f"T05thread:01;watch:{word:x};")  # a failed cmpxchg: same value
    assert ws.handle(ws.stub.next_stop(2.0)) is None and ws.slots[0] is not None
    k.mem[word] = 1025
    qemu.stop(f"T05thread:01;watch:{word:x};")
    hit = ws.handle(ws.stub.next_stop(2.0))
    assert hit is not None and hit.kind == "on_error"
    assert hits == [("on_error", EXIT_KIND_FIELD, word, "SCX_EXIT_ERROR_BPF")]
    assert ws.slots[0] is None and qemu.running
