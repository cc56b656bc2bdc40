"""Performance mode: a VM whose vCPU threads each run on a host CPU of their own.

`@ktstr_test(performance_mode=True)` asks for a VM whose timing is disturbed as
little as the host allows:

- each vCPU thread (its id from QMP `query-cpus-fast`) is pinned to one of the
  host CPUs the run reserved (ktstr.vm.cpulock), a different one per thread
  (`pin_map`). Under TCG with one thread for every vCPU (whenever a sched_ext
  scheduler may load, ktstr.vm.accel) `query-cpus-fast` names that thread for
  every vCPU: it is pinned to one CPU and the record says so;
- guest memory is on 2 MiB hugepages when a hugetlbfs mount of that page size
  exists and the pool has enough free pages for it (`choose_hugepages`); the
  backend stays a shared file (on that mount) so the monitor still maps guest
  RAM by fd. Otherwise guest RAM stays on /dev/shm and the record says why;
- the vCPU threads are SCHED_FIFO (priority `FIFO_PRIORITY`) under KVM only: a
  TCG vCPU thread never idles while its guest has work, so at FIFO it would keep
  the host's own threads (qemu's I/O, the harness, the monitor) off its CPU.

A host with fewer usable CPUs than the VM has vCPU threads cannot give each its
own: the run is refused before boot (`refuse_too_few_cpus`). CPUs that other
runs hold are waited for, as for any VM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError
from ktstr.system.affinity import pin_thread, set_fifo
from ktstr.system.fs import SysIoError
from ktstr.system.hugepages import hugetlbfs_mounts, meminfo
from ktstr.vm.qemu import vcpu_threads

#: The hugepage size performance mode uses, in KiB.
HUGEPAGE_KB = 2048
#: The SCHED_FIFO priority of vCPU threads under KVM: the lowest real-time one, above
#: every ordinary thread and below the kernel's own real-time threads.
FIFO_PRIORITY = 1


def refuse_too_few_cpus(test_id: str, vcpus: int, threads: int, host_cpus: int) -> None:
    """ConfigError when the host has fewer usable CPUs than the VM has vCPU threads."""
    if threads <= host_cpus:
        return
    raise ConfigError(
        f"{test_id}: performance_mode needs a host CPU of its own for each of the VM's "
        f"{threads} vCPU threads ({vcpus} vCPUs), and this process may run on "
        f"{host_cpus} host CPU(s); hint: give the test at most {host_cpus} vCPUs, or "
        "drop performance_mode")


def fifo_why_not(accel: str) -> str:
    """Why the vCPU threads of a VM under `accel` are not made SCHED_FIFO ("" if they are)."""
    if accel == "kvm":
        return ""
    return (f"not under {accel}: an emulated vCPU thread never idles while its guest has "
            "work, so at SCHED_FIFO it would keep the host's own threads off its CPU")


@dataclass(frozen=True)
class Pinning:
    """What performance mode does to a running VM's vCPU threads (ktstr.vm.machine):
    pin them to `cpus` (the run's reserved host CPUs, one per thread) and, when
    `fifo`, make them SCHED_FIFO."""

    cpus: tuple[int, ...]
    fifo: bool


def pin_map(threads: Mapping[int, int], cpus: Sequence[int]) -> dict[int, int]:
    """vCPU index -> the host CPU its thread is pinned to. Each distinct thread, in the
    order of the lowest vCPU it runs, takes the next of `cpus`; vCPUs sharing a thread
    (TCG with one thread) share its CPU. ValueError when there are more threads than
    CPUs (the reservation holds one per thread)."""
    by_thread: dict[int, int] = {}
    for vcpu in sorted(threads):
        tid = threads[vcpu]
        if tid not in by_thread:
            if len(by_thread) == len(cpus):
                raise ValueError(f"{len(set(threads.values()))} vCPU threads and "
                                 f"{len(cpus)} reserved host CPUs ({list(cpus)})")
            by_thread[tid] = cpus[len(by_thread)]
    return {vcpu: by_thread[threads[vcpu]] for vcpu in sorted(threads)}


@dataclass(frozen=True)
class PinnedThreads:
    """What `apply_pinning` did to one qemu process."""

    threads: dict[int, int]  # vCPU index -> host thread id
    cpus: dict[int, int]  # vCPU index -> the host CPU its thread is pinned to
    fifo: bool
    fifo_error: str = ""  # why SCHED_FIFO was asked for and not applied


def apply_pinning(qmp: Callable[..., Any], pinning: Pinning) -> PinnedThreads:
    """Pin a running qemu's vCPU threads as `pinning` says; SysIoError when one cannot
    be pinned. A thread that cannot be made SCHED_FIFO is left as it is and the result
    says why (no real-time rights is a host's choice, not a broken run)."""
    threads = vcpu_threads(qmp)
    cpus = pin_map(threads, pinning.cpus)
    for tid, cpu in {threads[v]: cpus[v] for v in threads}.items():
        pin_thread(tid, cpu)
    fifo_error = ""
    if pinning.fifo:
        try:
            for tid in set(threads.values()):
                set_fifo(tid, FIFO_PRIORITY)
        except SysIoError as e:
            fifo_error = str(e)
    return PinnedThreads(threads, cpus, pinning.fifo and not fifo_error, fifo_error)


@dataclass(frozen=True)
class HugepageChoice:
    """Where guest RAM goes: a hugetlbfs mount (`mem_dir`), or None with why not."""

    mem_dir: Path | None
    why_not: str = ""


def choose_hugepages(node_sizes_mb: Sequence[int], meminfo: Mapping[str, int],
                     mounts: Sequence[tuple[Path, int]]) -> HugepageChoice:
    """A hugetlbfs mount of 2 MiB pages whose pool has enough free pages for every NUMA
    node's memory (`node_sizes_mb`, each a whole number of pages), or why there is none.
    `meminfo`: /proc/meminfo's numbers; its HugePages_* count pages of the host's
    default size (`Hugepagesize`), so only a host whose default is 2 MiB is read.
    `mounts`: (mount point, page size in KiB) of the host's hugetlbfs mounts."""
    need = sum(size * 1024 // HUGEPAGE_KB for size in node_sizes_mb)
    odd = [size for size in node_sizes_mb if size * 1024 % HUGEPAGE_KB]
    if odd:
        return HugepageChoice(None, f"a NUMA node's memory ({odd[0]} MiB) is not a whole "
                              "number of 2 MiB pages")
    default_kb = meminfo.get("Hugepagesize", 0)
    if default_kb != HUGEPAGE_KB:
        return HugepageChoice(None, f"the host's default hugepage size is {default_kb} kB, "
                              f"not {HUGEPAGE_KB} kB")
    free = meminfo.get("HugePages_Free", 0) - meminfo.get("HugePages_Rsvd", 0)
    if free < need:
        return HugepageChoice(None, f"the host has {max(free, 0)} free 2 MiB hugepages of "
                              f"{meminfo.get('HugePages_Total', 0)}, the guest needs {need}; "
                              f"hint: echo {need} > /proc/sys/vm/nr_hugepages (as root)")
    for point, size_kb in mounts:
        if size_kb == HUGEPAGE_KB:
            return HugepageChoice(point)
    return HugepageChoice(None, "no hugetlbfs mount of 2 MiB pages; hint: mount -t "
                          "hugetlbfs -o pagesize=2M none /dev/hugepages (as root)")


def host_hugepages(node_sizes_mb: Sequence[int]) -> HugepageChoice:
    """`choose_hugepages` on this host's /proc/meminfo and mounts."""
    try:
        info = meminfo()
        return choose_hugepages(node_sizes_mb, info,
                                hugetlbfs_mounts(info.get("Hugepagesize", 0)))
    except SysIoError as e:
        return HugepageChoice(None, f"cannot read the host's hugepages: {e}")


@dataclass(frozen=True)
class PerformanceRecord:
    """What performance mode did for one run, as its result and sidecar keep it."""

    vcpu_cpus: dict[int, int] = field(default_factory=dict)  # vCPU -> host CPU pinned to
    vcpu_threads: dict[int, int] = field(default_factory=dict)  # vCPU -> host thread id
    hugepages: bool = False
    hugepages_why_not: str = ""
    fifo: bool = False
    fifo_why_not: str = ""

    @property
    def single_thread(self) -> bool:
        """Every vCPU ran on one host thread (TCG with one thread)."""
        return len(self.vcpu_threads) > 1 and len(set(self.vcpu_threads.values())) == 1

    def line(self) -> str:
        """One line for the test's report."""
        pins = ", ".join(f"vCPU {v} -> CPU {c}" for v, c in sorted(self.vcpu_cpus.items()))
        if self.single_thread:
            pins = f"one thread for all vCPUs -> CPU {next(iter(self.vcpu_cpus.values()))}"
        huge = "yes" if self.hugepages else f"no ({self.hugepages_why_not})"
        fifo = "yes" if self.fifo else f"no ({self.fifo_why_not})"
        return (f"performance mode: pinned {pins or 'nothing (no VM came up)'}; "
                f"hugepages: {huge}; SCHED_FIFO: {fifo}")

    @classmethod
    def of(cls, pinned: PinnedThreads | None, hugepages: HugepageChoice,
           fifo_not_applied: str) -> PerformanceRecord:
        """The record of a run whose machine's pinning did `pinned` (None: no VM came
        up), whose guest RAM went where `hugepages` says, and whose vCPU threads were
        not made SCHED_FIFO for the reason `fifo_not_applied` ("": they were asked to)."""
        pinned = pinned or PinnedThreads({}, {}, False)
        return cls(vcpu_cpus=pinned.cpus, vcpu_threads=pinned.threads,
                   hugepages=hugepages.mem_dir is not None,
                   hugepages_why_not=hugepages.why_not, fifo=pinned.fifo,
                   fifo_why_not=fifo_not_applied or pinned.fifo_error
                   or ("" if pinned.fifo else "no VM came up"))

    def to_dict(self) -> dict[str, Any]:
        return {"vcpu_cpus": {str(k): v for k, v in self.vcpu_cpus.items()},
                "vcpu_threads": {str(k): v for k, v in self.vcpu_threads.items()},
                "hugepages": self.hugepages, "hugepages_why_not": self.hugepages_why_not,
                "fifo": self.fifo, "fifo_why_not": self.fifo_why_not}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PerformanceRecord:
        return cls(vcpu_cpus={int(k): int(v) for k, v in (d.get("vcpu_cpus") or {}).items()},
                   vcpu_threads={int(k): int(v)
                                 for k, v in (d.get("vcpu_threads") or {}).items()},
                   hugepages=bool(d.get("hugepages", False)),
                   hugepages_why_not=str(d.get("hugepages_why_not", "")),
                   fifo=bool(d.get("fifo", False)), fifo_why_not=str(d.get("fifo_why_not", "")))
