"""Performance mode's decisions: which host CPU each vCPU thread gets, the refusal of
a host too small, hugepages or why not, SCHED_FIFO or why not, and the record."""

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from ktstr.errors import ConfigError
from ktstr.runner.result import RunResult
from ktstr.runner.sidecar import read_sidecar
from ktstr.topology import Topology
from ktstr.vm.cpulock import vcpu_thread_count
from ktstr.vm.machine import VmSpec, machine_identity
from ktstr.vm.perfmode import (
    HugepageChoice,
    PerformanceRecord,
    PinnedThreads,
    Pinning,
    apply_pinning,
    choose_hugepages,
    fifo_why_not,
    pin_map,
    refuse_too_few_cpus,
)
from ktstr.vm.qemu import QemuBinary

DATA = Path(__file__).parent / "data" / "sidecar"
HUGE = Path("/dev/hugepages")


def test_each_vcpu_thread_gets_the_next_reserved_cpu_in_vcpu_order():
    assert pin_map({1: 501, 0: 500, 2: 502}, [3, 5, 7, 9]) == {0: 3, 1: 5, 2: 7}


def test_one_thread_for_all_vcpus_is_pinned_to_one_cpu():
    assert pin_map({0: 500, 1: 500, 2: 500, 3: 500}, [6]) == {0: 6, 1: 6, 2: 6, 3: 6}


def test_more_threads_than_reserved_cpus_is_an_error():
    with pytest.raises(ValueError, match=r"3 vCPU threads and 2 reserved host CPUs \(\[0, 1\]\)"):
        pin_map({0: 1, 1: 2, 2: 3}, [0, 1])


def test_vcpu_threads_are_one_under_single_threaded_tcg_else_one_per_vcpu():
    assert vcpu_thread_count(8, "tcg", "single") == 1
    assert vcpu_thread_count(8, "tcg", "multi") == 8
    assert vcpu_thread_count(8, "kvm", "single") == 8


def test_a_host_with_fewer_cpus_than_vcpu_threads_is_refused_naming_counts_and_fix():
    refuse_too_few_cpus("t.py::a", 2, 2, 2)  # fits
    refuse_too_few_cpus("t.py::a", 8, 1, 2)  # 8 vCPUs on one TCG thread fit too
    with pytest.raises(ConfigError) as err:
        refuse_too_few_cpus("t.py::big", 4, 4, 2)
    assert str(err.value) == (
        "t.py::big: performance_mode needs a host CPU of its own for each of the VM's 4 "
        "vCPU threads (4 vCPUs), and this process may run on 2 host CPU(s); hint: give "
        "the test at most 2 vCPUs, or drop performance_mode")


def meminfo(total: int, free: int, rsvd: int = 0, size_kb: int = 2048) -> dict[str, int]:
    return {"HugePages_Total": total, "HugePages_Free": free, "HugePages_Rsvd": rsvd,
            "Hugepagesize": size_kb}


def test_hugepages_are_used_when_the_pool_has_enough_free_pages_on_a_2m_mount():
    mounts = [(Path("/mnt/huge1g"), 1 << 20), (HUGE, 2048)]
    assert choose_hugepages([512, 512], meminfo(512, 512), mounts) == HugepageChoice(HUGE)


def test_reserved_pages_are_not_free():
    choice = choose_hugepages([512], meminfo(300, 300, rsvd=100), [(HUGE, 2048)])
    assert choice.mem_dir is None
    assert choice.why_not.startswith("the host has 200 free 2 MiB hugepages of 300, the "
                                     "guest needs 256; hint: echo 256 > ")


def test_no_pool_no_mount_other_default_size_or_odd_node_each_say_why():
    assert choose_hugepages([2048], meminfo(0, 0), [(HUGE, 2048)]).why_not.startswith(
        "the host has 0 free 2 MiB hugepages of 0, the guest needs 1024")
    assert choose_hugepages([256], meminfo(128, 128), []).why_not.startswith(
        "no hugetlbfs mount of 2 MiB pages; hint: mount -t hugetlbfs")
    assert choose_hugepages([256], meminfo(128, 128), [(HUGE, 1 << 20)]).mem_dir is None
    assert choose_hugepages([256], meminfo(4, 4, size_kb=1 << 20), [(HUGE, 2048)]) \
        .why_not == "the host's default hugepage size is 1048576 kB, not 2048 kB"
    assert choose_hugepages([257, 256], meminfo(999, 999), [(HUGE, 2048)]).why_not == \
        "a NUMA node's memory (257 MiB) is not a whole number of 2 MiB pages"


def test_sched_fifo_only_under_kvm():
    assert fifo_why_not("kvm") == ""
    assert fifo_why_not("tcg").startswith("not under tcg: an emulated vCPU thread never idles")


def test_apply_pinning_pins_each_thread_qemu_names(monkeypatch):
    pinned: list[tuple[int, int]] = []
    monkeypatch.setattr("ktstr.vm.perfmode.pin_thread", lambda tid, cpu: pinned.append((tid, cpu)))
    reply = [{"cpu-index": 1, "thread-id": 41}, {"cpu-index": 0, "thread-id": 40}]
    done = apply_pinning(lambda cmd: reply if cmd == "query-cpus-fast" else None,
                         Pinning((4, 6), fifo=False))
    assert done == PinnedThreads({1: 41, 0: 40}, {0: 4, 1: 6}, fifo=False)
    assert sorted(pinned) == [(40, 4), (41, 6)]


def test_apply_pinning_really_sets_a_threads_affinity():
    """On a thread of this process standing in for the one TCG thread of 2 vCPUs."""
    cpu = max(os.sched_getaffinity(0))
    seen: dict[str, object] = {}

    def stand_in() -> None:
        tid = threading.get_native_id()
        seen["done"] = apply_pinning(lambda cmd: [{"cpu-index": 0, "thread-id": tid},
                                                  {"cpu-index": 1, "thread-id": tid}],
                                     Pinning((cpu,), fifo=False))
        seen["mask"] = os.sched_getaffinity(0)

    t = threading.Thread(target=stand_in)
    t.start()
    t.join()
    assert seen["mask"] == {cpu}
    done = seen["done"]
    assert isinstance(done, PinnedThreads) and done.cpus == {0: cpu, 1: cpu}


def test_the_record_says_what_was_done_and_why_not():
    pinned = PinnedThreads({0: 40, 1: 41}, {0: 2, 1: 3}, fifo=False)
    rec = PerformanceRecord.of(pinned, HugepageChoice(None, "no pool"), fifo_why_not("tcg"))
    assert rec.line() == ("performance mode: pinned vCPU 0 -> CPU 2, vCPU 1 -> CPU 3; "
                          f"hugepages: no (no pool); SCHED_FIFO: no ({fifo_why_not('tcg')})")
    one = PerformanceRecord.of(PinnedThreads({0: 40, 1: 40}, {0: 5, 1: 5}, fifo=True),
                               HugepageChoice(HUGE), "")
    assert one.single_thread and one.hugepages and one.fifo and one.fifo_why_not == ""
    assert one.line() == ("performance mode: pinned one thread for all vCPUs -> CPU 5; "
                          "hugepages: yes; SCHED_FIFO: yes")
    refused = PerformanceRecord.of(PinnedThreads({0: 40}, {0: 5}, False, "EPERM; hint: x"),
                                   HugepageChoice(HUGE), "")
    assert not refused.fifo and refused.fifo_why_not == "EPERM; hint: x"
    none = PerformanceRecord.of(None, HugepageChoice(HUGE), "")
    assert none.line().startswith("performance mode: pinned nothing (no VM came up)")


def test_the_record_is_in_the_sidecar_only_in_performance_mode():
    res = RunResult.from_dict(read_sidecar(DATA / "sidecar_main_failed.json"))
    assert res.performance is None and "performance" not in res.to_dict()
    rec = PerformanceRecord({0: 1, 1: 0}, {0: 40, 1: 41}, False, "no pool", False, "tcg")
    perf = replace(res, performance=rec)
    assert perf.to_dict()["performance"]["vcpu_cpus"] == {"0": 1, "1": 0}
    assert RunResult.from_dict(perf.to_dict()).performance == rec


def test_pinning_leaves_the_command_line_and_so_the_snapshot_identity_alone(tmp_path,
                                                                           monkeypatch):
    """A performance-mode VM restores the guests other runs saved; one on hugepages
    names another memory path (and boots cold, see ktstr.runner.vmrun)."""
    monkeypatch.setenv("KTSTR_QEMU", "/bin/true")
    QemuBinary.find.cache_clear()
    try:
        spec = VmSpec(image=tmp_path / "k", initrd=tmp_path / "i",
                      topology=Topology.parse("1n1l2c1t"), memory_mb=256, accel="tcg")
        pinned = replace(spec, pinning=Pinning((0, 1), fifo=False))
        assert machine_identity(pinned) == machine_identity(spec)
        huge = replace(pinned, mem_dir=HUGE)
        assert any(f"mem-path={HUGE}/" in a for a in machine_identity(huge))
    finally:
        QemuBinary.find.cache_clear()
