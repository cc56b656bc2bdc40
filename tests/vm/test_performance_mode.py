"""performance_mode=True: each vCPU thread pinned to its own reserved host CPU, proven
from /proc while the guest runs; the result's hugepage and SCHED_FIFO record; a host
with fewer CPUs than the VM's vCPU threads refused before any boot.

The pinning is read from /proc beside the harness's own record: a thread of this
test polls /proc for the qemu this process started (its child) and reads the
`Cpus_allowed_list` of every one of its threads until the run ends (the last
reading of each thread counts: threads exist from qemu's start, unpinned for the
instant before the pinning). The threads allowed a single CPU must then be exactly
the vCPU threads QMP named, each on its own CPU; qemu's other threads (main loop,
RCU, I/O) keep the process's whole affinity.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ktstr.errors import ConfigError
from ktstr.settings import settings
from ktstr.system.fs import SysIoError
from ktstr.system.proc import parse_stat, task_cpus_allowed
from ktstr.vm.accel import choose_accel
from ktstr.vm.cpulock import holders, host_cpus
from tests.vm import perfmode_bodies

PROC = Path("/proc")


def _qemu_children() -> list[int]:
    """Pids of the qemu processes whose parent is this process."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError):
            continue
        if fields[1].startswith("qemu-system") and int(fields[3]) == os.getpid():
            found.append(int(entry.name))
    return found


def _thread_affinity(pid: int) -> dict[int, frozenset[int]]:
    """Thread id -> Cpus_allowed_list of every thread of process `pid`."""
    out = {}
    tasks = PROC / str(pid) / "task"
    for task in tasks.iterdir():
        try:
            out[int(task.name)] = task_cpus_allowed(task.name, tasks)
        except (OSError, SysIoError):  # the thread ended meanwhile
            continue
    return out


def _guest_ram_page_kb(pid: int) -> set[int]:
    """The page sizes (KernelPageSize, KiB) of qemu `pid`'s mappings of its guest-RAM
    files (`ktstr-<run>-node<N>`, unlinked once mapped: "(deleted)")."""
    sizes: set[int] = set()
    ram = False
    try:
        text = (PROC / str(pid) / "smaps").read_text()
    except OSError:
        return sizes
    for line in text.splitlines():
        if line[:1].isalnum() and "-" in line.split()[0] and ":" not in line.split()[0]:
            ram = "/ktstr-" in line and "-node" in line  # a mapping's header line
        elif ram and line.startswith("KernelPageSize:"):
            sizes.add(int(line.split()[1]))
    return sizes


class AffinityWatcher:
    """Reads the affinity of every thread of this process's qemu until stopped."""

    def __init__(self) -> None:
        self.last: dict[int, frozenset[int]] = {}  # thread id -> its latest mask
        self.readings = 0
        self.ram_page_kb: set[int] = set()  # page sizes of qemu's mappings of guest RAM
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            for pid in _qemu_children():
                try:
                    seen = _thread_affinity(pid)
                except OSError:  # qemu exited meanwhile
                    continue
                if seen:
                    self.last.update(seen)
                    self.readings += 1
                self.ram_page_kb |= _guest_ram_page_kb(pid)

    def __enter__(self) -> AffinityWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_each_vcpu_thread_runs_on_one_reserved_cpu_of_its_own(run_vm):
    with AffinityWatcher() as watcher:
        r = run_vm(perfmode_bodies, "two_pinned_vcpus")
    assert r.passed, r.error + "\n" + r.report
    perf = r.performance
    assert perf is not None, "a performance-mode run records what it did"
    # From /proc, while the guest ran: the threads allowed one CPU are the two vCPU
    # threads, each on a CPU of its own, the ones the harness recorded pinning.
    assert watcher.readings > 0, "never saw this test's qemu"
    assert len(perf.vcpu_threads) == 2 and not perf.single_thread, perf
    assert len(set(perf.vcpu_cpus.values())) == 2, perf
    single = {tid: mask for tid, mask in watcher.last.items() if len(mask) == 1}
    assert sorted(single) == sorted(perf.vcpu_threads.values()), (watcher.last, perf)
    for vcpu, tid in perf.vcpu_threads.items():
        assert single[tid] == {perf.vcpu_cpus[vcpu]}, (vcpu, tid, single, perf)
    assert set(perf.vcpu_cpus.values()) <= set(host_cpus())
    others = [m for tid, m in watcher.last.items() if tid not in single]
    assert others and all(m == set(host_cpus()) for m in others), others
    # What else performance mode did, or why not, is in the result and its report.
    # Hugepages: what qemu's mappings of guest RAM were backed by, seen in its smaps.
    assert watcher.ram_page_kb == ({2048} if perf.hugepages else {4}), (watcher.ram_page_kb,
                                                                        perf)
    if not perf.hugepages:
        assert perf.hugepages_why_not, perf
    if r.accel == "tcg":
        assert not perf.fifo and "not under tcg" in perf.fifo_why_not, perf
    assert "--- performance mode ---" in r.report and perf.line() in r.report
    assert not [h for h in holders() if "two_pinned_vcpus" in h.test_id]


def test_one_tcg_thread_for_all_vcpus_is_pinned_to_one_cpu(run_vm):
    """A sched_ext scheduler makes TCG run every vCPU on one thread: 4 vCPUs fit a host
    of 2 CPUs, and that thread is the only one pinned."""
    if choose_accel() != "tcg" or settings().tcg_threads == "multi":
        pytest.skip("needs TCG with one thread for all vCPUs")
    with AffinityWatcher() as watcher:
        r = run_vm(perfmode_bodies, "four_vcpus_one_thread")
    assert r.passed, r.error + "\n" + r.report
    perf = r.performance
    assert perf is not None and perf.single_thread, perf
    assert sorted(perf.vcpu_threads) == [0, 1, 2, 3], perf
    (tid,) = set(perf.vcpu_threads.values())
    (cpu,) = set(perf.vcpu_cpus.values())
    single = {t: m for t, m in watcher.last.items() if len(m) == 1}
    assert single == {tid: {cpu}}, (watcher.last, perf)
    assert "pinned one thread for all vCPUs -> CPU" in r.report


def test_more_vcpu_threads_than_host_cpus_is_refused_before_a_boot(run_vm, tmp_path):
    test = perfmode_bodies.too_many_vcpus
    if test.topology.cpus <= len(host_cpus()):
        pytest.skip(f"this host has {len(host_cpus())} CPUs: {test.topology.cpus} vCPUs fit")
    with pytest.raises(ConfigError) as err:
        run_vm(perfmode_bodies, "too_many_vcpus")
    msg = str(err.value)
    assert f"each of the VM's {test.topology.cpus} vCPU threads" in msg, msg
    assert f"may run on {len(host_cpus())} host CPU(s)" in msg, msg
    assert "drop performance_mode" in msg, msg
    assert not list(tmp_path.iterdir()), "nothing ran: no sidecar, no work directory"
