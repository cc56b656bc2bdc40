"""The attached scheduler's BPF maps and globals, read and written from the host
(ktstr.monitor.bpfstate), checked against what the scheduler itself does with them.

One guest runs scx_qmap, then (once the host made qmap fail through one of its own
variables) scx_flatcg. Every read happens with the guest stopped (QMP stop/cont), as a
snapshot does it.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

import pytest

from ktstr.errors import KtstrError
from ktstr.monitor.bpfstate import scheduler_state, write_scheduler_var
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.guestmem import GuestMemory
from ktstr.vm.kernel import Kernel, resolve_kernel
from ktstr.vm.machine import Machine
from ktstr.vm.sched.cache import discover

from .guestvm import guest, sleepers, until

CPUS = 2


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return resolve_kernel(None)


def _frozen(machine: Machine, k: GuestKernel, **kw: Any) -> tuple[dict[str, Any], float]:
    machine.qmp("stop")
    t = time.perf_counter()
    try:
        return scheduler_state(k, **kw), time.perf_counter() - t
    finally:
        machine.qmp("cont")


#: Each probe here freezes the guest (QMP stop) to read it: poll slowly, wait longer.
_until = functools.partial(until, timeout=120.0, every=0.2)


def _attached(machine: Machine, k: GuestKernel, ops: str) -> dict[str, Any] | None:
    state, _ = _frozen(machine, k)
    return state if state["scheduler"] == ops else None


def test_scheduler_maps_and_globals_from_the_host(kernel):
    qmap, flatcg = discover("scx_qmap", kernel), discover("scx_flatcg", kernel)
    if qmap is None or flatcg is None:
        pytest.skip("scx_qmap / scx_flatcg are not built (ktstr sched build)")
    command = (f"{sleepers(CPUS)} (sleep 4; {qmap} >/dev/null 2>&1; "
               f"{flatcg} >/dev/null 2>&1) & sleep 600")
    with guest(kernel, "1n1l2c1t", command, bzimage=False, tcg_threads="single") as machine:
        k = GuestKernel.open(GuestMemory.from_fds(machine.memory_fds), CPUS)
        before, _ = _frozen(machine, k)
        if before["scheduler"] is None:  # the guest's 4 s head start may be over already
            assert before == {"scheduler": None, "maps": {}, "vars": {}}

        # -- scx_qmap: counters grow between two frozen reads ---------------------------
        def qmap_counting() -> dict[str, Any] | None:
            state = _attached(machine, k, "qmap")
            return state if state and state["vars"]["qa"]["nr_enqueued"] else None

        first = _until("scx_qmap attached and enqueueing", qmap_counting)
        time.sleep(1.0)
        second, took = _frozen(machine, k)
        assert second["scheduler"] == "qmap"
        maps = second["maps"]
        assert {"scx_qmap.bss", "scx_qmap.data", "scx_qmap.rodata", "arena",
                "monitor_timer", "qmap_ops"} <= set(maps), sorted(maps)
        assert "arena" in maps["arena"]["unsupported"]
        assert "per-task" in maps["task_ctx_stor"]["unsupported"]
        assert maps["scx_qmap.bss"]["type"] == "array"
        assert maps["scx_qmap.bss"]["value_size"] >= 4096
        timer = maps["monitor_timer"]["entries"]
        assert len(timer) == 1 and set(timer[0]["value"]) == {"timer"}  # BTF field names
        v1, v2 = first["vars"], second["vars"]
        assert v2["slice_ns"] == 20_000_000  # .rodata: qmap's default slice, SCX_SLICE_DFL
        assert v2["uei"]["kind"] == 0 and v2["uei"]["reason"] == ""  # .data, not exited
        assert "____qmap_enqueue.user_cnt" in v2 and "dispatch_highpri.highpri_seq" in v2
        for counter in ("nr_enqueued", "nr_dispatched"):  # in qmap's arena (`qa`)
            assert v2["qa"][counter] > v1["qa"][counter] > 0, (counter, v1["qa"], v2["qa"])
        print(f"\nscheduler_state(qmap, {CPUS} vCPUs): {took * 1e3:.0f} ms frozen",
              file=sys.stderr)

        # -- writes: errors first, then values the scheduler observes ------------------
        with pytest.raises(KtstrError, match=r"no global 'no_such_var'; it has: .*slice_ns"):
            write_scheduler_var(k, "no_such_var", 1)
        with pytest.raises(KtstrError, match=r"'slice_ns' is in scx_qmap\.rodata.*read-only"):
            write_scheduler_var(k, "slice_ns", 1)
        with pytest.raises(KtstrError, match=r"qa\.nr_dispatched is unsigned long long"):
            write_scheduler_var(k, "qa.nr_dispatched", -1)
        assert write_scheduler_var(k, "dispatch_highpri.highpri_seq", 12345) == 12345  # .bss
        assert _frozen(machine, k)[0]["vars"]["dispatch_highpri.highpri_seq"] == 12345
        big = 10**12
        assert write_scheduler_var(k, "qa.nr_dispatched", big) == big
        _until("qmap counting on from the written nr_dispatched",
               lambda: _frozen(machine, k)[0]["vars"]["qa"]["nr_dispatched"] > big)
        # qmap's own -e: scx_bpf_error() once the countdown reaches 0; then flatcg loads
        assert write_scheduler_var(k, "qa.test_error_cnt", 2) == 2
        _until("scx_qmap failed by its test_error_cnt",
               lambda: _frozen(machine, k)[0]["scheduler"] != "qmap")

        # -- scx_flatcg: per-CPU arrays and a hash map ---------------------------------
        a = _until("scx_flatcg attached", lambda: _attached(machine, k, "flatcg"))

        def total(s: dict[str, Any]) -> int:
            return sum(sum(e["value"]) for e in s["entries"])

        def grown() -> dict[str, Any] | None:  # the guest is mostly idle: wait for events
            b, _ = _frozen(machine, k)
            return b if total(b["maps"]["stats"]) > total(a["maps"]["stats"]) else None

        b = _until("scx_flatcg's per-CPU stats counting on", grown)
        ctx = b["maps"]["cpu_ctx"]
        assert ctx["type"] == "percpu_array" and len(ctx["entries"]) == 1
        per_cpu = ctx["entries"][0]["value"]
        assert len(per_cpu) == CPUS and all(set(c) == {"cur_cgid", "cur_at"} for c in per_cpu)

        # cur_at is set when a CPU's dispatch picks a cgroup (flatcg's fcg_dispatch); in
        # this mostly idle guest no CPU may have done so yet when the stats first grow
        # (seen once, on a host loaded by other VMs): wait for it rather than sample once.
        def picked() -> list[dict[str, int]] | None:
            cpus = _frozen(machine, k)[0]["maps"]["cpu_ctx"]["entries"][0]["value"]
            return cpus if any(c["cur_at"] for c in cpus) else None

        _until("a CPU of scx_flatcg picking a cgroup (cpu_ctx cur_at set)", picked)
        stats_a, stats_b = a["maps"]["stats"], b["maps"]["stats"]
        assert stats_b["type"] == "percpu_array" and len(stats_b["entries"]) == 21
        assert total(stats_b) > total(stats_a)
        stash = b["maps"]["cgv_node_stash"]
        assert stash["type"] == "hash" and stash["truncated"] is False
        assert stash["entries"], "flatcg stashes a node per cgroup (the root at least)"
        assert all(isinstance(e["key"], int) and set(e["value"]) == {"node"}
                   for e in stash["entries"])
        bounded, _ = _frozen(machine, k, max_entries=1)
        assert bounded["maps"]["stats"]["truncated"] is True
        assert len(bounded["maps"]["stats"]["entries"]) == 1
        # .data: flatcg's user space polls uei.kind and leaves when it is set
        assert write_scheduler_var(k, "uei.kind", 1) == 1
        _until("scx_flatcg detached after seeing uei.kind",
               lambda: _frozen(machine, k)[0]["scheduler"] is None)
        assert _frozen(machine, k)[0] == {"scheduler": None, "maps": {}, "vars": {}}
