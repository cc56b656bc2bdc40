"""VM bodies for AffinityIntent: each worker's mask read back from the kernel.

Not a test module. One scenario in a 1n2l2c2t guest (LLCs 0-3 | 4-7, SMT
siblings 0-1 | 2-3 | 4-5 | 6-7) with one cgroup per intent; a sampler reads
every worker's `Cpus_allowed_list` (/proc/<tid>/status) while it runs and,
once each worker has been seen, clears the cpusets of `cross` and `pinned`
mid-run, as `Op.clear_cpuset` would.
"""

from __future__ import annotations

import time

from ktstr import (
    AffinityIntent,
    AssertResult,
    CgroupDef,
    CpusetSpec,
    Ctx,
    execute_defs,
    ktstr_test,
)
from ktstr.system.proc import task_cpus_allowed
from ktstr.topology import format_cpulist
from tests.vm.probes import Sampler, reports_by_cgroup


def fs(*cpus: int) -> frozenset[int]:
    return frozenset(cpus)


# What each intent must give on 1n2l2c2t, written out rather than computed with the
# code under test. Worker order is not visible from outside, so a cgroup's masks are
# compared as a sorted list.
EXPECTED = {
    "single": [fs(0), fs(1), fs(2), fs(3)],  # single_cpu() in llc(0) = 0-3
    "llc": [fs(2, 3), fs(4, 5)],  # llc_aligned() in 2-5: the cpuset cuts both LLCs
    "smt": [fs(2, 3), fs(2, 3)],  # smt_sibling_pair() in 1-4: only core 2-3 is whole
}
CROSS_CPUSET = fs(5)
PINNED = fs(6)  # an explicit CpusetSpec affinity inside the cpuset 5-6


class MaskWatch:
    """Samples every worker's Cpus_allowed_list; clears two cpusets mid-run.

    A worker is in its cgroup a moment before it pins itself, so samples count
    only from `SETTLE_TICKS` ticks after the last worker showed up (by then all
    have said ready, which they do after pinning); the cpusets are cleared
    `CLEAR_TICKS` ticks after that point.
    """

    SETTLE_TICKS = 2
    CLEAR_TICKS = 4

    def __init__(self, ctx: Ctx, names: list[str], workers: int) -> None:
        self.ctx = ctx
        self.names = names
        self.workers = workers
        self.before: dict[str, dict[int, set[frozenset[int]]]] = {n: {} for n in names}
        self.after: dict[str, dict[int, set[frozenset[int]]]] = {n: {} for n in names}
        self.ticks = 0  # ticks since every worker was first seen
        self.cleared_at: float | None = None

    def _masks(self) -> dict[str, dict[int, frozenset[int]]]:
        out: dict[str, dict[int, frozenset[int]]] = {}
        for name in self.names:
            out[name] = {}
            try:
                tids = self.ctx.cgroups.threads(name)
            except Exception:  # not created yet, or already removed
                continue
            for tid in tids:
                try:
                    out[name][tid] = task_cpus_allowed(tid)
                except Exception:  # the worker exited between listing and reading
                    continue
        return out

    def __call__(self) -> None:
        masks = self._masks()
        if self.ticks == 0 and sum(len(m) for m in masks.values()) < self.workers:
            return
        self.ticks += 1
        if self.ticks <= self.SETTLE_TICKS:
            return
        phase = self.before if self.cleared_at is None else self.after
        for name, tids in masks.items():
            for tid, mask in tids.items():
                phase[name].setdefault(tid, set()).add(mask)
        if self.cleared_at is None and self.ticks >= self.CLEAR_TICKS:
            self.ctx.cgroups.clear_cpuset("cross")
            self.ctx.cgroups.clear_cpuset("pinned")
            self.cleared_at = time.monotonic()


# Cgroups share CPUs on purpose (5 workers on CPUs 2-3): placement is the point here,
# not fairness, so the spread check is off.
@ktstr_test(llcs=2, cores=2, threads=2, duration_s=4, watchdog_timeout_s=10,
            max_spread_pct=100.0)
def intents_place_each_worker(ctx: Ctx) -> AssertResult:
    defs = [
        CgroupDef("single", workers=4, cpuset=CpusetSpec.llc(0),
                  affinity=AffinityIntent.single_cpu()),
        CgroupDef("llc", workers=2, cpuset=CpusetSpec.exact({2, 3, 4, 5}),
                  affinity=AffinityIntent.llc_aligned()),
        CgroupDef("smt", workers=2, cpuset=CpusetSpec.exact({1, 2, 3, 4}),
                  affinity=AffinityIntent.smt_sibling_pair()),
        CgroupDef("cross", workers=2, cpuset=CpusetSpec.exact(CROSS_CPUSET),
                  affinity=AffinityIntent.cross_cgroup()),
        CgroupDef("pinned", workers=1, cpuset=CpusetSpec.exact(CROSS_CPUSET | PINNED),
                  affinity=CpusetSpec.exact(PINNED)),
    ]
    watch = MaskWatch(ctx, [d.name for d in defs], sum(d.workers or 0 for d in defs))
    with Sampler(watch, 0.2):
        result = execute_defs(ctx, defs)
    assert watch.cleared_at is not None, f"never saw every worker for long: {watch.ticks}"
    by_cg = reports_by_cgroup(result)
    everything = ctx.topo.all_cpus
    assert everything == frozenset(range(8)), ctx.topo.describe()

    for name, want in EXPECTED.items():
        masks = {tid: m for tid, m in watch.before[name].items()}
        for tid, seen in masks.items():
            assert len(seen) == 1, f"{name}: tid {tid} changed mask: {seen}"
        got = sorted((next(iter(m)) for m in masks.values()), key=sorted)
        assert got == sorted(want, key=sorted), f"{name}: Cpus_allowed_list {got}, want {want}"
        for r in by_cg[name]:
            (mask,) = masks[r.tid]
            assert r.cpus_used and r.cpus_used <= mask, (
                f"{name}: tid {r.tid} ran on {sorted(r.cpus_used)} outside {sorted(mask)}")

    # cross_cgroup: clipped to the cpuset while it is set, every CPU once it is cleared.
    for tid, seen in watch.before["cross"].items():
        assert seen == {CROSS_CPUSET}, f"cross: tid {tid} had {seen} under cpuset 5"
    assert len(watch.after["cross"]) == 2, watch.after
    for tid, seen in watch.after["cross"].items():
        assert seen == {everything}, f"cross: tid {tid} had {seen} after clear_cpuset"
    # ... and the scheduler used it: two spinners on CPU 5 with idle CPUs beside them.
    assert any(r.cpus_used - CROSS_CPUSET for r in by_cg["cross"]), [
        sorted(r.cpus_used) for r in by_cg["cross"]]
    # An explicit CpusetSpec affinity is its own request: it stays on its CPU.
    for phase in (watch.before, watch.after):
        for tid, seen in phase["pinned"].items():
            assert seen == {PINNED}, f"pinned: tid {tid} had {seen}"
    (pinned,) = by_cg["pinned"]
    assert pinned.cpus_used == PINNED, pinned.cpus_used
    for name in watch.names:
        for r in by_cg[name]:
            before = ",".join(format_cpulist(m) for m in watch.before[name].get(r.tid, ()))
            after = ",".join(format_cpulist(m) for m in watch.after[name].get(r.tid, ()))
            result.details.append(f"{name} tid={r.tid} Cpus_allowed_list={before} "
                                  f"after_clear={after} ran_on={format_cpulist(r.cpus_used)}")
    return result
