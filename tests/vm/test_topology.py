"""The guest sees exactly the topology asked for, read straight from the guest's sysfs.

These bodies run inside the VM. They read /sys by hand (not through
ktstr.system) so they check the harness against the kernel, not against itself.
"""

import glob
import os

from ktstr import Ctx, ktstr_test
from ktstr.topology import parse_cpulist


def _cpulist(text: str) -> set[int]:
    return set(parse_cpulist(text))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _guest_view() -> tuple[int, list[set[int]], list[set[int]], dict[int, set[int]]]:
    cpus = len(glob.glob("/sys/devices/system/cpu/cpu[0-9]*"))
    llcs: list[set[int]] = []
    for path in glob.glob("/sys/devices/system/cpu/cpu*/cache/index3/shared_cpu_list"):
        group = _cpulist(_read(path))
        if group not in llcs:
            llcs.append(group)
    nodes = [_cpulist(_read(p)) for p in
             sorted(glob.glob("/sys/devices/system/node/node*/cpulist"))]
    siblings = {c: _cpulist(_read(f"/sys/devices/system/cpu/cpu{c}/topology/"
                                  "thread_siblings_list")) for c in range(cpus)}
    return cpus, sorted(llcs, key=min), nodes, siblings


def _expect(ctx: Ctx, cpus: int, llcs: list[set[int]], nodes: list[set[int]],
            smt: int) -> None:
    seen_cpus, seen_llcs, seen_nodes, siblings = _guest_view()
    assert seen_cpus == cpus == os.cpu_count(), f"{seen_cpus} CPUs, expected {cpus}"
    assert seen_llcs == llcs, f"LLCs {seen_llcs}, expected {llcs}"
    assert seen_nodes == nodes, f"NUMA nodes {seen_nodes}, expected {nodes}"
    for c, sib in siblings.items():
        assert len(sib) == smt and c in sib, f"cpu{c} siblings {sib}, expected {smt} threads"
    # The scenario layer's view of the same guest agrees with the kernel's.
    assert ctx.topo.cpus == cpus
    assert [set(ctx.topo.llc_aligned_cpuset(i)) for i in range(len(llcs))] == llcs
    assert [set(ctx.topo.numa_cpuset(n)) for n in range(len(nodes))] == nodes


@ktstr_test(numa_nodes=1, llcs=1, cores=2, threads=1)
def topo_1n1l2c1t(ctx: Ctx) -> None:
    _expect(ctx, 2, [{0, 1}], [{0, 1}], smt=1)


@ktstr_test(numa_nodes=1, llcs=2, cores=2, threads=1)
def topo_1n2l2c1t(ctx: Ctx) -> None:
    _expect(ctx, 4, [{0, 1}, {2, 3}], [{0, 1, 2, 3}], smt=1)


@ktstr_test(numa_nodes=2, llcs=2, cores=2, threads=2)
def topo_2n2l2c2t(ctx: Ctx) -> None:
    _expect(ctx, 8, [{0, 1, 2, 3}, {4, 5, 6, 7}], [{0, 1, 2, 3}, {4, 5, 6, 7}], smt=2)
    for c in range(8):
        assert _cpulist(_read(f"/sys/devices/system/cpu/cpu{c}/topology/"
                              "thread_siblings_list")) == {c & ~1, c | 1}
