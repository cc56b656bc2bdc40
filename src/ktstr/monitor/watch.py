"""Write watchpoints on guest kernel variables, and the scheduler's error exit as one.

A `WatchSet` binds a booted guest kernel (`GuestKernel`, for symbols and memory) to its
gdbstub (`ktstr.vm.gdbstub.GdbStub`). It has four slots, as the x86 debug registers
(up to 3 user watches per scenario; slot 0 is reserved for the error-class exit_kind
trigger):

- slot 0 watches `scx_root->exit_kind`, re-armed whenever the attached scheduler
  changes (a `struct scx_sched` is allocated per load, so the address moves). The
  kernel writes that word once per scheduler lifetime, when the exit is claimed
  (`scx_claim_exit`), long before the scheduler's maps and programs are freed: a hit
  whose value is in the error range (>= SCX_EXIT_ERROR) is reported as "on_error"
  while the failing scheduler's state is still in memory; a clean unload (SCX_EXIT_UNREG
  and the like) only disarms the slot.
- slots 1..3 take user watches: a kernel variable named verbatim as in kallsyms, of a
  data type (d/D/b/B), 4-byte aligned; each guest write of its 4 bytes is a hit.

On a hit every vCPU is stopped (qemu's gdbstub under TCG); the handler `on_hit(kind,
symbol, address, value)` runs then, with the guest frozen, and the VM resumes when it
returns. Cost: ~25 ms per hit, and every access to a watched page runs slower under
TCG (bench/watch_cost.py measures both), so watches are for rare events.

Symbols are checked when the op runs, before anything is armed: a name the kernel
lacks, a function, read-only or per-CPU data, or a misaligned one is a ConfigError
naming near matches. (The ops are built by the test body, in the guest, so the host
cannot see them before the boot.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ktstr.errors import ConfigError, KtstrError
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.symtab import WRITABLE, SymbolTable
from ktstr.vm.gdbstub import GdbStub, GdbStubError, StopEvent

log = logging.getLogger(__name__)

MAX_USER_WATCHES = 3
ON_ERROR_SLOT = 0
SLOTS = MAX_USER_WATCHES + 1
WATCH_LEN = 4  # bytes watched (and read back as the value) per symbol
ALIGN = 4
EXIT_KIND_FIELD = "scx_sched.exit_kind"
EXIT_ERROR = "SCX_EXIT_ERROR"
ON_ERROR = "on_error"

#: on_hit(kind, symbol, address, value): kind "watch" (value: the u32 now at the
#: address) or "on_error" (value: the `enum scx_exit_kind` name, e.g. "SCX_EXIT_ERROR_BPF").
HitHandler = Callable[[str, str, int, "int | str"], None]


@dataclass(frozen=True, slots=True)
class WatchHit:
    kind: str  # "watch" or "on_error"
    symbol: str  # the watched symbol; "scx_sched.exit_kind" for slot 0
    address: int
    value: int | str
    cpu: int | None  # the vCPU whose write stopped the guest
    stopped_ms: float  # from the stop reply's arrival to qemu's ack of the resume


_NOT_WRITABLE = {
    "text": "a function (kernel text)",
    "percpu": "a per-CPU variable (each CPU writes its own copy, not this template)",
    "ro_after_init": "read-only after boot (__ro_after_init)",
    "rodata": "read-only data",
    "init": "init data, freed after boot",
}


def check_watch_symbol(table: SymbolTable, symbol: str) -> int:
    """`symbol`'s address (KERNELOFFSET 0) if it can be watched; ConfigError naming the
    value and the fix otherwise."""
    if not symbol or symbol != symbol.strip():
        raise ConfigError(f"watch symbol {symbol!r} is empty or has surrounding spaces; "
                          "hint: give a kernel variable's name exactly as in /proc/kallsyms")
    found = table.get(symbol)
    if found is None:
        near = table.near(symbol)
        hint = f"similar kernel variables: {', '.join(near)}" if near else \
            "no similar names; check /proc/kallsyms in the guest"
        raise ConfigError(f"watch symbol {symbol!r} is not in this kernel's kallsyms "
                          f"(build {table.build_id[:12]}); names match verbatim; hint: {hint}")
    addr = found[0]
    region = table.region(addr)
    if region not in WRITABLE:
        what = _NOT_WRITABLE.get(region, "outside the kernel's .data and .bss")
        raise ConfigError(f"watch symbol {symbol!r} ({addr:#x}) is {what}, not a writable "
                          "kernel variable in .data or .bss; hint: watch a variable there")
    if addr % ALIGN:
        raise ConfigError(f"watch symbol {symbol!r} is at {addr:#x}, not {ALIGN}-byte aligned; "
                          f"hint: watches cover {WATCH_LEN} aligned bytes: pick an aligned "
                          "variable (or the aligned field holding this one)")
    return addr


@dataclass(slots=True)
class _Slot:
    symbol: str
    address: int
    armed_value: int  # the word's value when armed: a write of the same value is no news


class WatchSet:
    """Watches on one guest kernel through its gdbstub; hits handled on a thread.

    `start()` begins handling stop events; `close()` removes every watchpoint and leaves
    the guest running. Errors of the stub (a dead socket, a refused watchpoint) stop the
    set: `error` says why, and `add`/`arm_exit_kind` raise.
    """

    def __init__(self, kernel: GuestKernel, stub: GdbStub, on_hit: HitHandler | None = None,
                 *, follow_scheduler: bool = True, poll_s: float = 0.2) -> None:
        self.kernel = kernel
        self.stub = stub
        self.on_hit = on_hit
        self.follow_scheduler = follow_scheduler
        self.poll_s = poll_s
        self.slots: list[_Slot | None] = [None] * SLOTS
        self.hits: list[WatchHit] = []
        self.exits: list[tuple[int, str]] = []  # (scx_sched address, exit kind name) seen
        self.pauses = 0  # stops not caused by a watchpoint (QMP stop, ...), left alone
        self.error: str | None = None
        self._root = 0  # the scx_sched slot 0 was armed for (0: none)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        kinds = kernel.layout.exit_kinds
        self._exit_names = {v: k for k, v in kinds.items()}
        self._error_from = kinds.get(EXIT_ERROR)
        self._none = kinds.get("SCX_EXIT_NONE", 0)

    # -- slots -------------------------------------------------------------------

    def add(self, symbol: str) -> int:
        """Watch writes to kernel variable `symbol`; returns its slot (1..3). A symbol
        already watched returns its slot."""
        with self._lock:
            for i, s in enumerate(self.slots[1:], start=1):
                if s is not None and s.symbol == symbol:
                    return i
            free = [i for i in range(1, SLOTS) if self.slots[i] is None]
            if not free:
                have = ", ".join(s.symbol for s in self.slots[1:] if s is not None)
                raise ConfigError(f"cannot watch {symbol!r}: at most {MAX_USER_WATCHES} "
                                  f"watches per scenario (slot {ON_ERROR_SLOT} is reserved "
                                  f"for the scheduler's error exit) and {have} are "
                                  "watched; hint: drop one of them")
            table = self.kernel.symtab()
            check_watch_symbol(table, symbol)
            addr = table.address(symbol, self.kernel.info.kernel_offset)
            assert addr is not None
            self._arm(free[0], _Slot(symbol, addr, self._u32(addr)))
            return free[0]

    def remove(self, slot: int) -> None:
        with self._lock:
            self._disarm(slot)

    def arm_exit_kind(self, scx_root: int) -> None:
        """Point slot 0 at `scx_root->exit_kind` (0: no scheduler, disarm). A scheduler
        whose exit is already claimed is not armed: its word will not change again."""
        with self._lock:
            armed = self.slots[ON_ERROR_SLOT]
            if scx_root == self._root and armed is not None:
                return
            self._disarm(ON_ERROR_SLOT)
            self._root = scx_root
            if scx_root == 0:
                return
            if not self.kernel.layout.has(EXIT_KIND_FIELD) or self._error_from is None:
                raise KtstrError(f"this kernel ({self.kernel.info.osrelease}) has no "
                                 f"{EXIT_KIND_FIELD} or enum scx_exit_kind in its BTF: "
                                 "cannot watch for a scheduler's error exit")
            addr = scx_root + self.kernel.offset(EXIT_KIND_FIELD)
            value = self._u32(addr)
            if value != self._none:
                return
            self._arm(ON_ERROR_SLOT, _Slot(EXIT_KIND_FIELD, addr, value))

    def sync_exit_kind(self) -> None:
        """Re-arm slot 0 if the attached scheduler changed: one read of `scx_root`, and of
        its exit_kind while slot 0 is idle (a new scheduler may reuse the old address)."""
        root = self.kernel.scx_root()
        if root == self._root and (root == 0 or self.slots[ON_ERROR_SLOT] is not None):
            return
        if root and root == self._root and \
                self._u32(root + self.kernel.offset(EXIT_KIND_FIELD)) != self._none:
            return  # the same scheduler, exit already seen
        self.arm_exit_kind(root)

    def _arm(self, slot: int, s: _Slot) -> None:
        self._check()
        try:
            with self.stub.stopped():
                self.stub.insert_watchpoint(s.address, WATCH_LEN)
        except GdbStubError as e:
            raise KtstrError(f"cannot watch {s.symbol} at {s.address:#x}: {e}") from e
        self.slots[slot] = s
        log.debug("watch slot %d: %s at %#x", slot, s.symbol, s.address)

    def _disarm(self, slot: int) -> None:
        s = self.slots[slot]
        if s is None:
            return
        self.slots[slot] = None
        if self.error is not None:
            return
        try:
            with self.stub.stopped():
                self.stub.remove_watchpoint(s.address)
        except GdbStubError as e:
            self._fail(str(e))

    def _u32(self, addr: int) -> int:
        return self.kernel.aspace.u32(addr)

    def _check(self) -> None:
        if self.error is not None:
            raise KtstrError(f"the watch set stopped: {self.error}")

    def _fail(self, why: str) -> None:
        if self.error is None:
            log.warning("watch set stopped: %s", why)
            self.error = why

    # -- hits --------------------------------------------------------------------

    def start(self) -> WatchSet:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ktstr-watch", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ev = self.stub.next_stop(self.poll_s)
                if ev is not None:
                    self.handle(ev)
                elif self.follow_scheduler and not self._stop.is_set():
                    self.sync_exit_kind()
            except (GdbStubError, KtstrError) as e:
                self._fail(str(e))
                return
            except Exception as e:  # a bug in on_hit must not leave the guest stopped
                log.exception("watch handler failed")
                self._fail(f"watch handler failed: {e!r}")
                return

    def handle(self, ev: StopEvent) -> WatchHit | None:
        """One stop event: a hit on one of our slots runs the handler then resumes the
        guest; any other stop (QMP `stop`) is left to whoever caused it."""
        t0 = ev.at or time.monotonic()
        if ev.kind != "watch" or ev.watch is None:
            if ev.kind == "exit":
                raise GdbStubError(f"the VM stopped for good ({ev.raw})")
            self.pauses += 1
            return None
        hit: WatchHit | None = None
        try:
            with self._lock:
                slot = self._slot_of(ev.watch)
                if slot is not None:
                    hit = self._hit(slot, ev)
        finally:
            self.stub.cont()
        if hit is not None:
            hit = replace(hit, stopped_ms=(time.monotonic() - t0) * 1000.0)
            with self._lock:
                self.hits.append(hit)
        return hit

    def _slot_of(self, addr: int) -> int | None:
        for i, s in enumerate(self.slots):
            if s is not None and s.address <= addr < s.address + WATCH_LEN:
                return i
        return None

    def _hit(self, slot: int, ev: StopEvent) -> WatchHit | None:
        s = self.slots[slot]
        assert s is not None
        value = self._u32(s.address)
        if slot != ON_ERROR_SLOT:
            return self._record("watch", s, value, ev)
        if value == s.armed_value:
            return None  # a failed cmpxchg still writes under TCG: nothing claimed yet
        name = self._exit_names.get(value, str(value))
        self.exits.append((self._root, name))
        self.slots[slot] = None  # claimed once per scheduler: nothing more to see
        self.stub.remove_watchpoint(s.address)
        assert self._error_from is not None
        if value < self._error_from:
            return None
        return self._record(ON_ERROR, s, name, ev)

    def _record(self, kind: str, s: _Slot, value: int | str, ev: StopEvent) -> WatchHit:
        if self.on_hit is not None:
            self.on_hit(kind, s.symbol, s.address, value)
        return WatchHit(kind, s.symbol, s.address, value, ev.cpu, 0.0)

    def wait_hits(self, n: int, timeout: float) -> list[WatchHit]:
        """Block until `n` hits were handled (or `timeout`); returns the hits so far."""
        deadline = time.monotonic() + timeout
        while len(self.hits) < n and time.monotonic() < deadline and self.error is None:
            time.sleep(0.02)
        return list(self.hits)

    def close(self) -> None:
        """Stop handling, remove every watchpoint, leave the guest running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 5.0)
        with self._lock:
            for i in range(SLOTS):
                self._disarm(i)
            # Hits that arrived before their watchpoint went: never leave the guest stopped.
            while self.error is None:
                try:
                    ev = self.stub.next_stop(0.0)
                    if ev is None:
                        break
                    if ev.kind == "watch":
                        self.stub.cont()
                except GdbStubError as e:
                    self._fail(str(e))

    def __enter__(self) -> WatchSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
