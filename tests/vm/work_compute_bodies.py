"""Test bodies for test_work_compute.py: compute, cache and I/O types seen from the kernel.

Not a test module (no test_ prefix). Each body runs its workers through
execute_defs while a sampler thread reads what the kernel says about them
(/proc/<pid>/io, /proc/<pid>/status, /proc/<pid>/stat, /proc/<pid>/sched);
it asserts presence and direction of effects only (slow emulation, a loaded
host) and returns its figures as `key=value` detail lines of a passing
result. Fairness is not the point here, so the bodies judge the reports
themselves.
"""

from __future__ import annotations

import os

from ktstr import AssertResult, CgroupDef, CpusetSpec, Ctx, execute_defs, ktstr_test
from ktstr.system.blockdev import find_scratch_disk
from ktstr.system.cpu import thread_siblings
from ktstr.work.compute import AluHot, AluWidth, IpcVariance, SmtSiblingSpin
from ktstr.work.io import IO_BLOCK_BYTES, IoConvoy, IoRandRead, IoSyncWrite
from ktstr.work.memory import CachePressure, CacheYield
from ktstr.work.report import WorkerReport
from ktstr.work.sequence import AluHotPhase, Io, Sequence
from tests.vm.probes import Sampler, cgroup_pids, read, reports_by_cgroup, sched_field

SAMPLE_S = 0.02


def _io(pid: int) -> dict[str, int] | None:
    text = read(f"/proc/{pid}/io")
    if text is None:
        return None
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


@ktstr_test(llcs=1, cores=2, threads=2, duration_s=2)
def smt_pairs_on_siblings(ctx: Ctx) -> AssertResult:
    """Two SmtSiblingSpin pairs in a 1n1l2c2t guest: each pair on one core's threads."""
    allowed: dict[int, set[str]] = {}
    ran_on: dict[int, set[int]] = {}

    def sample() -> None:
        for pid in cgroup_pids(ctx.cgroups.path("smt")):
            status = read(f"/proc/{pid}/status") or ""
            for line in status.splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    allowed.setdefault(pid, set()).add(line.split(":")[1].strip())
            stat = read(f"/proc/{pid}/stat")
            if stat:  # field 39: the CPU the task last ran on
                ran_on.setdefault(pid, set()).add(int(stat[stat.rindex(")") + 2:].split()[36]))

    with Sampler(sample, SAMPLE_S) as s:
        result = execute_defs(ctx, [CgroupDef("smt", workers=4, work=SmtSiblingSpin())])
    reports = reports_by_cgroup(result)["smt"]
    out = [f"samples={s.samples}"]
    pinned = sorted(int(r.metrics["smt_cpu"]) for r in reports)
    assert pinned == [0, 1, 2, 3], pinned  # two pairs, two cores, every thread used once
    for r in reports:
        cpu = int(r.metrics["smt_cpu"])
        assert not r.notes, r.notes
        assert cpu in r.cpus_used, (r.tid, cpu, r.cpus_used)
        assert r.metrics["smt_handoffs"] > 0, r.metrics  # the sibling ran alongside
        # The kernel's view: the mask ends as that one CPU, and late samples saw it there.
        assert str(cpu) in allowed.get(r.tid, set()), (r.tid, cpu, allowed.get(r.tid))
        assert cpu in ran_on.get(r.tid, set()), (r.tid, cpu, ran_on.get(r.tid))
        out.append(f"smt tid={r.tid} cpu={cpu} siblings={sorted(thread_siblings(cpu))} "
                   f"cpus_used={sorted(r.cpus_used)} masks_seen={sorted(allowed[r.tid])} "
                   f"units={r.work_units} handoffs={r.metrics['smt_handoffs']:.0f} "
                   f"csw={r.voluntary_csw}+{r.involuntary_csw}")
    # Pairs: the partner of each pinned CPU is its SMT sibling, also pinned by a worker.
    for cpu in pinned:
        assert thread_siblings(cpu) <= set(pinned), (cpu, thread_siblings(cpu))
    return AssertResult(details=out)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def alu_and_ipc_variance_stay_on_cpu(ctx: Ctx) -> AssertResult:
    """AluHot and IpcVariance never block: the kernel shows them on-CPU, no voluntary
    switches; the cold phase's buffer is really walked (minor faults on first touch)."""
    result = execute_defs(ctx, [
        CgroupDef("alu", workers=1, work=AluHot(AluWidth.VEC512), cpuset=CpusetSpec.exact({0})),
        CgroupDef("ipc", workers=1, work=IpcVariance(), cpuset=CpusetSpec.exact({1})),
    ])
    groups = reports_by_cgroup(result)
    out = []
    for name in ("alu", "ipc"):
        (r,) = groups[name]
        on_cpu = r.cpu_time_ns / max(1, r.wall_time_ns)
        out.append(f"{name} tid={r.tid} units={r.work_units} on_cpu={on_cpu:.2f} "
                   f"csw={r.voluntary_csw}+{r.involuntary_csw} metrics={r.metrics}")
        assert r.work_units > 0
        assert r.voluntary_csw <= 3, (name, r.voluntary_csw)
        assert on_cpu > 0.5, (name, on_cpu)  # alone on its CPU and never sleeping
    (alu,) = groups["alu"]
    assert alu.metrics["alu_chains"] == 8
    assert alu.metrics["alu_multiplies"] >= 8 * 256 * alu.work_units
    (ipc,) = groups["ipc"]
    assert ipc.metrics["ipc_phase_pairs"] == ipc.work_units > 0
    return AssertResult(details=out)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def cache_yield_switches_every_pass(ctx: Ctx) -> AssertResult:
    """Two CacheYield workers sharing cpu 1 switch at nearly every pass; two
    CachePressure workers sharing cpu 0 switch only when preempted."""
    result = execute_defs(ctx, [
        CgroupDef("press", workers=2, work=CachePressure(), cpuset=CpusetSpec.exact({0})),
        CgroupDef("yield", workers=2, work=CacheYield(), cpuset=CpusetSpec.exact({1})),
    ])
    groups = reports_by_cgroup(result)
    out = []
    rate: dict[str, float] = {}
    for name in ("press", "yield"):
        units = sum(r.work_units for r in groups[name])
        switches = sum(r.involuntary_csw for r in groups[name])
        rate[name] = switches / max(1, units)
        out.append(f"{name} units={units} involuntary_csw={switches} "
                   f"per_unit={rate[name]:.3f} voluntary="
                   f"{sum(r.voluntary_csw for r in groups[name])}")
        assert units > 0
    assert rate["yield"] > 0.5, rate  # a yield with a runnable peer is a switch
    # The spinners are preempted by the tick too, more often on a loaded emulated host
    # (0.28 per unit seen against 0.54 for the yielders): the yielders still switch more.
    assert rate["yield"] > rate["press"], rate
    return AssertResult(details=out)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def io_types_do_their_io(ctx: Ctx) -> AssertResult:
    """IoRandRead, IoConvoy, IoSyncWrite and a Sequence with Io/AluHot phases, judged
    by /proc/<pid>/io (the kernel's per-task I/O accounting) and /proc/<pid>/sched."""
    seen: dict[int, list[dict[str, int]]] = {}
    names = ("rand", "convoy", "sync", "seq")

    def sample() -> None:
        for name in names:
            for pid in cgroup_pids(ctx.cgroups.path(name)):
                io = _io(pid)
                if io is not None:
                    seen.setdefault(pid, []).append(io)

    with Sampler(sample, SAMPLE_S) as s:
        result = execute_defs(ctx, [
            CgroupDef("rand", workers=2, work=IoRandRead()),
            CgroupDef("convoy", workers=1, work=IoConvoy()),
            CgroupDef("sync", workers=1, work=IoSyncWrite()),
            CgroupDef("seq", workers=1, work=Sequence(Io(0.1), AluHotPhase(0.1, "vec256"))),
        ])
    groups = reports_by_cgroup(result)
    disk = find_scratch_disk()
    out = [f"samples={s.samples} scratch_disk={disk}"]

    def delta(r: WorkerReport) -> dict[str, int]:
        # From mid-run to the end: the set-up (the temp file's fill) is over by then.
        series = seen[r.tid]
        a, b = series[len(series) // 2], series[-1]
        return {k: b[k] - a[k] for k in b}

    for name in names:
        for r in groups[name]:
            d = delta(r)
            out.append(f"{name} tid={r.tid} units={r.work_units} io_delta={d} "
                       f"csw={r.voluntary_csw}+{r.involuntary_csw} metrics={r.metrics} "
                       f"notes={r.notes}")
            assert r.work_units > 0, (name, r)
            if disk is None:
                assert any("no scratch disk" in n for n in r.notes), (name, r.notes)
            else:  # the disk's case (tests/vm/test_scratch_disk.py) needs no note
                assert not r.notes, (name, r.notes)
    def all_4k(nbytes: int, calls: int) -> bool:
        # Every such syscall of the window moved one 4 KiB block, give or take the few
        # small /proc reads and the report's pipe write a worker does once it stops.
        return calls > 8 and abs(nbytes - IO_BLOCK_BYTES * calls) <= 8 * IO_BLOCK_BYTES

    for r in groups["rand"]:
        d = delta(r)
        assert all_4k(d["rchar"], d["syscr"]), d
        assert r.metrics["read_bytes"] == IO_BLOCK_BYTES * r.metrics["reads"] > 0
    for r in groups["convoy"]:
        d = delta(r)
        assert all_4k(d["wchar"], d["syscw"]) and all_4k(d["rchar"], d["syscr"]), d
        assert r.metrics["syncs"] == r.work_units // 16
    for name in ("sync", "seq"):
        for r in groups[name]:
            d = delta(r)
            assert all_4k(d["wchar"], d["syscw"]), (name, d)
    (seq,) = groups["seq"]
    assert seq.iterations >= 1, seq
    return AssertResult(details=out)


def _big_readonly_file() -> str:
    """A large file of the guest image that nothing writes: the interpreter's libpython
    (the guest's root is an overlay whose lower layer is the host's files over 9p)."""
    import sysconfig

    lib = os.path.join(sysconfig.get_config_var("LIBDIR") or "",
                       sysconfig.get_config_var("INSTSONAME") or "")
    return lib if os.path.isfile(lib) else os.path.realpath(os.__file__)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2)
def io_rand_read_blocks_on_a_virtio_fs(ctx: Ctx) -> AssertResult:
    """IoRandRead(path) on a file whose O_DIRECT reads go to the host (9p over virtio):
    every read sleeps uninterruptibly until the host answers. The kernel shows it:
    voluntary switches about one per read, block time in /proc/<pid>/sched
    (schedstats switched on for the run), `D` in /proc/<pid>/stat."""
    path = _big_readonly_file()
    knob = "/proc/sys/kernel/sched_schedstats"
    was = (read(knob) or "0").strip()
    block_ns: dict[int, float] = {}
    states: dict[int, dict[str, int]] = {}

    def sample() -> None:
        for pid in cgroup_pids(ctx.cgroups.path("rand")):
            v = sched_field(pid, "sum_block_runtime")  # stats./se.statistics. on old kernels
            if v is None:
                v = sched_field(pid, "stats.sum_block_runtime")
            if v is not None:
                block_ns[pid] = v * 1e6  # /proc/<pid>/sched prints ms
            stat = read(f"/proc/{pid}/stat")
            if stat:
                state = stat[stat.rindex(")") + 2]
                counts = states.setdefault(pid, {})
                counts[state] = counts.get(state, 0) + 1

    with open(knob, "w") as f:
        f.write("1")
    try:
        with Sampler(sample, SAMPLE_S) as s:
            result = execute_defs(ctx, [CgroupDef("rand", workers=2, work=IoRandRead(path))])
    finally:
        with open(knob, "w") as f:
            f.write(was)
    out = [f"samples={s.samples} path={path} size={os.path.getsize(path)}"]
    for r in reports_by_cgroup(result)["rand"]:
        out.append(f"rand tid={r.tid} units={r.work_units} csw={r.voluntary_csw}+"
                   f"{r.involuntary_csw} block_ms={block_ns.get(r.tid, 0) / 1e6:.1f} "
                   f"states={states.get(r.tid)} on_cpu="
                   f"{r.cpu_time_ns / max(1, r.wall_time_ns):.2f} notes={r.notes}")
        assert r.work_units > 10, r
        assert any("not a block device" in n for n in r.notes), r.notes
        # A read that sleeps is a voluntary switch: nearly one per read.
        assert r.voluntary_csw >= r.work_units // 2, (r.work_units, r.voluntary_csw)
        assert block_ns.get(r.tid, 0) > 0, block_ns  # the sleeps were uninterruptible
    return AssertResult(details=out)
