"""Test bodies for test_work_churn.py: churn work types proven from the kernel's side.

Not a test module (no test_ prefix). Each body runs its workers through
execute_defs while a sampler thread reads what the kernel says about them
(/proc/<pid>/sched, /proc/<pid>/status, cgroup.procs, numa_maps); it asserts
presence and direction of effects only (slow emulation, a loaded host) and
returns its figures as `key=value` detail lines of a passing result. The
fairness checks of execute_defs are not the point here (churn is unfair by
design), so the bodies judge the reports themselves.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ktstr import AssertResult, CgroupDef, Ctx, execute_defs, ktstr_test
from ktstr.work.classchurn import CgroupAttachStorm, CgroupChurn, CrossAffinityChurn, PolicyChurn
from ktstr.work.numa import NumaMigrationChurn, NumaWorkingSetSweep
from tests.vm.probes import Sampler, cgroup_pids, read, reports_by_cgroup, sched_field

SAMPLE_S = 0.01


def _status_field(pid: int, key: str) -> str | None:
    for line in (read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith(key + ":"):
            return line.partition(":")[2].strip()
    return None


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def affinity_and_policy_churn(ctx: Ctx) -> AssertResult:
    policies: dict[int, set[int]] = {}
    masks: dict[int, set[str]] = {}

    def sample() -> None:
        for pid in cgroup_pids(ctx.cgroups.path("pol")):
            p = sched_field(pid, "policy")
            if p is not None:
                policies.setdefault(pid, set()).add(int(p))
        for pid in cgroup_pids(ctx.cgroups.path("xaff")):
            m = _status_field(pid, "Cpus_allowed_list")
            if m is not None:
                masks.setdefault(pid, set()).add(m)

    with Sampler(sample, SAMPLE_S) as s:
        result = execute_defs(ctx, [CgroupDef("xaff", workers=3, work=CrossAffinityChurn()),
                                    CgroupDef("pol", workers=2, work=PolicyChurn())])
    groups = reports_by_cgroup(result)
    out = [f"samples={s.samples}"]
    for r in groups["xaff"]:
        # Each worker's affinity is rewritten by its siblings: it is migrated
        # (se.nr_migrations) and the kernel shows it pinned to different CPUs.
        assert r.metrics["affinity_writes"] > 0 and not r.notes, (r.tid, r.metrics, r.notes)
        assert r.migration_count > 0, (r.tid, r.migration_count)
        out.append(f"xaff tid={r.tid} writes={r.metrics['affinity_writes']:.0f} "
                   f"migrations={r.migration_count} cpus={sorted(r.cpus_used)} "
                   f"masks_seen={sorted(masks.get(r.tid, ()))}")
    assert any(len(m) >= 2 for m in masks.values()), masks
    for r in groups["pol"]:
        m = r.metrics
        assert min(m["set_other"], m["set_batch"], m["set_idle"], m["set_fifo"],
                   m["set_rr"]) > 0, (r.tid, m, r.notes)
        seen = policies.get(r.tid, set())
        out.append(f"pol tid={r.tid} changes={m['policy_changes']:.0f} "
                   f"kernel_policies_seen={sorted(seen)} csw={r.voluntary_csw}+"
                   f"{r.involuntary_csw}")
    # The kernel's own view: /proc/<pid>/sched showed more than one policy.
    assert any(len(p) >= 2 for p in policies.values()), policies
    return AssertResult(details=out)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def cgroup_churn_and_attach_storm(ctx: Ctx) -> AssertResult:
    seen_in: dict[str, set[int]] = {}

    def sample() -> None:
        for d in glob.glob(str(ctx.cgroups.parent_path / "churn_*")):
            seen_in.setdefault(os.path.basename(d), set()).update(cgroup_pids(Path(d)))

    def forks() -> int:
        for line in (read("/proc/stat") or "").splitlines():
            if line.startswith("processes "):
                return int(line.split()[1])
        raise AssertionError("no processes line in /proc/stat")

    forks_before = forks()
    with Sampler(sample, SAMPLE_S) as s:
        result = execute_defs(ctx, [
            CgroupDef("churn", workers=2, work=CgroupChurn(groups=2, cycle_ms=20)),
            CgroupDef("storm", workers=1, work=CgroupAttachStorm())])
    forked = forks() - forks_before
    groups = reports_by_cgroup(result)
    out = [f"samples={s.samples}", f"forks={forked}"]
    for r in groups["churn"]:
        mine = {name for name, pids in seen_in.items() if r.tid in pids}
        out.append(f"churn tid={r.tid} moves={r.metrics['cgroup_moves']:.0f} "
                   f"failures={r.metrics['cgroup_move_failures']:.0f} seen_in={sorted(mine)}")
        assert r.metrics["cgroup_moves"] > 0 and not r.notes, (r.tid, r.metrics, r.notes)
        assert r.metrics["cgroup_move_failures"] == 0, (r.tid, r.notes)
        # The kernel listed the worker in its sibling cgroups (both of them, over 3 s).
        assert len(mine) >= 2, (r.tid, seen_in)
    leftovers = glob.glob(str(ctx.cgroups.parent_path / "*_churn*"))
    leftovers += glob.glob(str(ctx.cgroups.parent_path / "*_storm*"))
    assert not leftovers, f"sibling cgroups left behind: {leftovers}"
    (storm,) = groups["storm"]
    m = storm.metrics
    out.append("storm " + " ".join(f"{k}={v:.0f}" for k, v in sorted(m.items())))
    assert m["attach_writes"] > 0 and not storm.notes, (m, storm.notes)
    assert m["attach_landed"] > 0, m  # some children were really moved before they exited
    assert forked >= m["attach_writes"], (forked, m)
    return AssertResult(details=out)


def _numa_maps_nodes(pid: int) -> set[int]:
    """Nodes holding pages of `pid`'s mbind-bound mappings, from /proc/<pid>/numa_maps."""
    nodes: set[int] = set()
    for line in (read(f"/proc/{pid}/numa_maps") or "").splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1].startswith("bind:"):
            nodes.update(int(f[1:].partition("=")[0]) for f in fields
                         if f.startswith("N") and "=" in f)
    return nodes


@ktstr_test(numa_nodes=2, llcs=2, cores=1, threads=1, duration_s=3)
def numa_churn(ctx: Ctx) -> AssertResult:
    page_nodes: dict[int, set[int]] = {}

    def sample() -> None:
        for pid in cgroup_pids(ctx.cgroups.path("sweep")):
            page_nodes.setdefault(pid, set()).update(_numa_maps_nodes(pid))

    with Sampler(sample, SAMPLE_S) as s:
        result = execute_defs(ctx, [
            CgroupDef("mig", workers=1, work=NumaMigrationChurn(period_ms=20)),
            CgroupDef("sweep", workers=1, work=NumaWorkingSetSweep())])
    groups = reports_by_cgroup(result)
    (mig,) = groups["mig"]
    (sweep,) = groups["sweep"]
    out = [f"samples={s.samples}",
           f"mig switches={mig.metrics['node_switches']:.0f} nodes={mig.metrics['nodes']:.0f} "
           f"migrations={mig.migration_count} cpus={sorted(mig.cpus_used)}",
           "sweep " + " ".join(f"{k}={v:.0f}" for k, v in sorted(sweep.metrics.items()))
           + f" numa_maps_nodes={sorted(page_nodes.get(sweep.tid, ()))}"]
    assert mig.metrics["nodes"] == 2 and not mig.notes, (mig.metrics, mig.notes)
    assert mig.cpus_used == {0, 1}, mig.cpus_used  # one CPU per node: it ran on both
    assert mig.migration_count >= 2, mig.migration_count
    m = sweep.metrics
    assert m["nodes"] == 2 and m["mbind_failures"] == 0 and not sweep.notes, (m, sweep.notes)
    assert m["pages_checked"] > 0 and m["pages_on_target"] > 0, m
    # The kernel placed the bound working set on both nodes over the run.
    assert page_nodes.get(sweep.tid, set()) == {0, 1}, page_nodes
    return AssertResult(details=out)
