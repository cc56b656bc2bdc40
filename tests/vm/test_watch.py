"""Write watchpoints through qemu's gdbstub (ktstr.monitor.watch), proved from the kernel's
side: a sysctl write the guest makes is one hit with the new value, the guest runs on, a
QMP stop/cont in between is left to QMP; `scx_qmap -e` trips the exit_kind watch while its
maps still exist, and a clean unload (SIGINT) does not.

The guest runs a shell loop and acts when the host writes `vm_swappiness` through guest
RAM (host writes are not guest writes: they trigger nothing), so each guest write happens
after the watch is armed, whatever the emulation's speed.
"""

from __future__ import annotations

import time

import pytest

from ktstr.errors import ConfigError
from ktstr.monitor.btf import Btf
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.guestmem import GuestMemory
from ktstr.monitor.watch import WatchSet
from ktstr.vm.kernel import Kernel, resolve_kernel
from ktstr.vm.sched.cache import discover

from .guestvm import guest, kernel_symbol, until

SWAPPINESS = "/proc/sys/vm/swappiness"
RR = "/proc/sys/kernel/sched_rr_timeslice_ms"


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return resolve_kernel(None)


def on_signal(cases: dict[int, str]) -> str:
    """A guest loop running `cases[v]` (then resetting) when the host sets swappiness v.
    It polls at 5 Hz, so that a waiting guest schedules little: `scx_qmap -e N` counts
    enqueues from the moment it loads."""
    arms = " ".join(f"{v}) {cmd}\n echo 10 > {SWAPPINESS};;" for v, cmd in cases.items())
    return f"while :; do case $(cat {SWAPPINESS}) in {arms} esac; sleep 0.2; done"


def signal(k: GuestKernel, value: int) -> None:
    """Set swappiness to `value` once the guest has taken the last signal (reset it to
    10): a signal written while the guest still runs the last case would be lost."""
    addr = kernel_symbol(k, "vm_swappiness")
    until("the guest done with the last signal", lambda: k.aspace.u32(addr) < 70)
    k.aspace.write(addr, value.to_bytes(4, "little"))


def test_sysctl_write_hits_once_and_the_guest_runs_on(kernel):
    cmd = on_signal({77: f"echo 5 > {RR}", 78: f"echo 6 > {RR}"})
    with guest(kernel, "1n1l2c1t", cmd, bzimage=True) as m:
        k = GuestKernel.open(GuestMemory.from_fds(m.memory_fds), 2)
        seen: list[tuple[str, str, int, int | str, str]] = []

        def on_hit(kind: str, symbol: str, address: int, value: int | str) -> None:
            seen.append((kind, symbol, address, value, m.qmp("query-status")["status"]))

        with WatchSet(k, m.gdbstub(), on_hit, follow_scheduler=False) as ws:
            assert ws.add("sysctl_sched_rr_timeslice") == 1
            assert ws.add("sysctl_sched_rr_timeslice") == 1  # already watched
            with pytest.raises(ConfigError, match="sysctl_sched_rr_timeslice"):
                ws.add("sysctl_sched_rr_timeslice_ms")  # not verbatim: near match listed
            with pytest.raises(ConfigError, match="function"):
                ws.add("schedule")
            addr = ws.slots[1].address  # type: ignore[union-attr]
            assert k.aspace.u32(addr) != 5
            signal(k, 77)
            until("the first hit", lambda: len(ws.hits) >= 1)
            jiffies = k.jiffies()
            until("the guest running after the hit", lambda: k.jiffies() > jiffies + 5)
            time.sleep(0.5)
            assert len(ws.hits) == 1, ws.hits  # one write, one hit
            assert seen == [("watch", "sysctl_sched_rr_timeslice", addr, 5, "debug")]
            assert ws.hits[0].cpu in (0, 1)

            m.qmp("stop")  # the stub reports it; the watch set must leave it stopped
            time.sleep(0.5)
            assert m.qmp("query-status")["status"] == "paused"
            assert ws.pauses >= 1 and ws.error is None
            m.qmp("cont")
            signal(k, 78)
            until("the second hit", lambda: len(ws.hits) >= 2)
            assert ws.hits[1].value == 6 and len(ws.hits) == 2
            print(f"\nper-hit handling {ws.hits[0].stopped_ms:.1f} / "
                  f"{ws.hits[1].stopped_ms:.1f} ms")
        assert m.gdbstub().watchpoints == {}
        assert m.qmp("query-status")["status"] == "running"
        jiffies = k.jiffies()
        until("the guest running after close", lambda: k.jiffies() > jiffies + 5)


def map_names(k: GuestKernel) -> list[str]:
    """The names of every BPF map in the kernel's `map_idr` (an xarray) right now."""
    btf = Btf(k.aspace.read(k.require("__start_BTF"),
                            k.require("__stop_BTF") - k.require("__start_BTF")))
    head = kernel_symbol(k, "map_idr")
    head += btf.offsetof("idr.idr_rt") + btf.offsetof("xarray.xa_head")
    shift_off, slots_off = btf.offsetof("xa_node.shift"), btf.offsetof("xa_node.slots")
    name_off = btf.offsetof("bpf_map.name")
    names: list[str] = []

    def walk(entry: int, leaf: bool) -> None:
        if entry == 0:
            return
        if entry & 3 == 2 and entry > 4096 and not leaf:  # an internal node
            node = entry - 2
            shift = k.aspace.read(node + shift_off, 1)[0]
            for i in range(64):
                walk(k.aspace.u64(node + slots_off + 8 * i), shift == 0)
        elif entry & 3 == 0:
            names.append(k.aspace.cstring(entry + name_off, 16))

    walk(k.aspace.u64(head), False)
    return names


def test_qmap_error_exit_trips_on_error_and_a_clean_unload_does_not(kernel):
    qmap = discover("scx_qmap", kernel)
    if qmap is None:
        pytest.skip("scx_qmap is not built (ktstr sched build)")
    load = "while :; do /bin/true; done"  # until qmap fails, and on under EEVDF
    cmd = (f"{qmap} >/dev/null 2>&1 & pid=$!; " + on_signal({
        77: "kill -INT $pid; wait $pid",
        78: f"({qmap} -e 3000 2>&1 | tail -3 > /dev/kmsg) &",
        79: load}))
    with guest(kernel, "1n1l2c1t", cmd, bzimage=False, tcg_threads="single") as m:
        k = GuestKernel.open(GuestMemory.from_fds(m.memory_fds), 2)
        at_error: list[tuple[str, int | str, list[str], str]] = []

        def on_hit(kind: str, symbol: str, address: int, value: int | str) -> None:
            at_error.append((kind, value, map_names(k), m.qmp("query-status")["status"]))

        with WatchSet(k, m.gdbstub(), on_hit, poll_s=0.05) as ws:
            def state() -> str:
                return (f"(scx_root {k.scx_root():#x}, slots {ws.slots}, exits {ws.exits}, "
                        f"hits {ws.hits}, error {ws.error})\n{m.console_tail(8)}")
            until("scx_qmap attached and slot 0 armed", lambda: ws.slots[0] is not None)
            first = k.scx_root()
            assert "task_ctx_stor" in map_names(k)  # qmap's maps, as the check below sees them
            signal(k, 77)  # SIGINT: a clean unload
            until("the clean exit seen", lambda: ws.exits)
            assert ws.exits[0][0] == first and ws.exits[0][1].startswith("SCX_EXIT_UNREG")
            until("slot 0 disarmed", lambda: ws.slots[0] is None and k.scx_root() == 0)
            disabled = k.layout.enable_states["SCX_DISABLED"]
            until("sched_ext disabled",  # a load before that fails with EBUSY
                  lambda: k.aspace.u32(k.require("scx_enable_state_var")) == disabled)
            assert ws.hits == [] and at_error == []
            signal(k, 78)  # qmap -e: scx_bpf_error() after 3000 enqueues
            until("scx_qmap -e attached and slot 0 re-armed",
                  lambda: ws.slots[0] is not None and k.scx_root() != 0, state=state)
            signal(k, 79)
            until("the error exit", lambda: ws.hits, timeout=120)
            time.sleep(0.3)
        assert ws.error is None, ws.error
        assert [h.kind for h in ws.hits] == ["on_error"]
        _kind, value, names, status = at_error[0]
        assert isinstance(value, str) and value.startswith("SCX_EXIT_ERROR"), value
        assert status == "debug"
        assert "task_ctx_stor" in names, names  # the failing scheduler's maps still exist
        assert ws.exits[-1][1] == value
