"""Test bodies for test_workload_policy.py: SchedPolicy, CloneMode.THREAD and pcomm
proven from the guest kernel's side.

Not a test module (no test_ prefix). Each body spawns workers in a cgroup of its
own, reads what the kernel says about them while they run (/proc/<pid>/task/<tid>/
sched `policy` and `dl.*` lines, sched_getattr(2), /proc/<pid>/comm,
cgroup.procs/cgroup.threads) and returns its figures as `key=value` detail lines
of a passing result. Assertions are on presence, not figures (slow emulation).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from ktstr import AssertResult, CgroupDef, Ctx, Scheduler, execute_defs, ktstr_test, work
from ktstr.system import proc
from ktstr.work.policy import SCHED_DEADLINE, SCHED_EXT, CloneMode, SchedPolicy, sched_getattr
from ktstr.workload import WorkerReport, WorkloadConfig, WorkloadHandle

RUN_S = 0.6
SCX_STATE = Path("/sys/kernel/sched_ext/state")
SIMPLE = Scheduler("scx_simple")


def _sched(leader: int, tid: int) -> dict[str, float]:
    return proc.task_sched(tid, root=Path(f"/proc/{leader}/task"))


def _spawn_sample_collect(ctx: Ctx, name: str, cfg: WorkloadConfig
                          ) -> tuple[dict[int, dict[str, float]], list[WorkerReport]]:
    """Spawn `cfg` into cgroup `name`, sample each task's /proc sched mid-run, collect."""
    ctx.cgroups.create(name)
    try:
        with WorkloadHandle.spawn(cfg, cgroup_dir=ctx.cgroups.path(name), start=True) as h:
            time.sleep(RUN_S / 2)  # the workers run meanwhile
            seen = {tid: _sched(h.leader_pids[0] if cfg.threaded else tid, tid)
                    for tid in h.pids}
            for tid, s in seen.items():
                attr = sched_getattr(tid)
                s.update({"attr.policy": attr.sched_policy, "attr.runtime": attr.sched_runtime,
                          "attr.deadline": attr.sched_deadline, "attr.period": attr.sched_period})
            time.sleep(RUN_S / 2)
            return seen, h.stop_and_collect()
    finally:
        ctx.cgroups.remove(name)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def policies_seen_by_the_kernel(ctx: Ctx) -> AssertResult:
    out = []
    policies = [SchedPolicy.normal(), SchedPolicy.batch(), SchedPolicy.idle(),
                SchedPolicy.fifo(10), SchedPolicy.round_robin(20),
                # 40% of a CPU each: a smaller budget under TCG emulation throttles the
                # interpreter so hard that a worker may not reach its first work unit.
                SchedPolicy.deadline(0.02, 0.04, 0.05)]
    for pol in policies:
        for mode in (CloneMode.FORK, CloneMode.THREAD):
            cfg = WorkloadConfig(workers=2, work=work.Bursty(0.002, 0.01), policy=pol,
                                 clone_mode=mode)
            seen, reports = _spawn_sample_collect(ctx, f"pol_{pol.name}_{mode.value}", cfg)
            for r in reports:
                s = seen[r.tid]
                assert s["policy"] == pol.policy, (str(pol), mode, r.tid, s.get("policy"))
                assert r.error == "" and r.work_units > 0, (str(pol), mode, r)
                if pol.policy == SCHED_DEADLINE:
                    # The dl entity is live: an absolute deadline and a remaining budget
                    # (negative while throttled after an overrun); sched_getattr gives
                    # back the parameters asked for.
                    assert "dl.runtime" in s and s["dl.deadline"] > 0, s
                    assert (s["attr.runtime"], s["attr.deadline"], s["attr.period"]) == (
                        pol.runtime_ns, pol.deadline_ns, pol.period_ns), s
                assert s["attr.policy"] == pol.policy, s
            dl = ""
            if pol.policy == SCHED_DEADLINE:
                dl = " dl.runtime=" + ",".join(f"{seen[r.tid]['dl.runtime']:.0f}"
                                               for r in reports) + " run_delay_ms=" + ",".join(
                    f"{r.run_delay_ns / 1e6:.0f}" for r in reports)
            out.append(f"{pol} {mode.value}: policy_seen="
                       f"{sorted({int(seen[r.tid]['policy']) for r in reports})} units="
                       f"{[r.work_units for r in reports]} csw="
                       f"{[r.voluntary_csw for r in reports]}{dl}")
    return AssertResult(details=out)


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def pcomm_threads_share_one_leader(ctx: Ctx) -> AssertResult:
    ctx.cgroups.create("app")
    try:
        cg = ctx.cgroups.path("app")
        cfg = WorkloadConfig(workers=3, work=work.Bursty(0.005, 0.01), pcomm="ktstr_app",
                             affinity=frozenset({1}), policy=SchedPolicy.batch())
        with WorkloadHandle.spawn(cfg, cgroup_dir=cg, start=True) as h:
            (leader,) = h.leader_pids
            tids = h.pids
            comm = Path(f"/proc/{leader}/comm").read_text().strip()
            tasks = {int(t) for t in os.listdir(f"/proc/{leader}/task")}
            policies = {int(proc.task_sched(t, root=Path(f"/proc/{leader}/task"))["policy"])
                     for t in tids}
            procs = [int(x) for x in (cg / "cgroup.procs").read_text().split()]
            threads = {int(x) for x in (cg / "cgroup.threads").read_text().split()}
            status_tgid = {int(Path(f"/proc/{leader}/task/{t}/status").read_text()
                               .split("Tgid:")[1].split()[0]) for t in tids}
            time.sleep(RUN_S)  # the threads run meanwhile
            reports = h.stop_and_collect()
    finally:
        ctx.cgroups.remove("app")
    assert comm == "ktstr_app", comm
    assert set(tids) <= tasks and len(set(tids)) == 3 and leader not in tids, (tids, tasks)
    assert status_tgid == {leader}, status_tgid
    assert procs == [leader] and set(tids) | {leader} <= threads, (procs, threads)
    assert policies == {3}, policies  # SCHED_BATCH on every thread
    for r in reports:
        assert r.error == "" and r.work_units > 0 and r.cpu_time_ns > 0, r
        assert r.cpus_used == {1}, (r.tid, r.cpus_used)
        assert r.cgroup.endswith("/app"), r.cgroup
    result = ctx.checks.assert_cgroup(reports, None)
    result.details.extend([
        f"leader={leader} comm={comm} tids={tids} cgroup.procs={procs} "
        f"cgroup.threads={sorted(threads)}",
        *(f"tid={r.tid} units={r.work_units} cpu_ms={r.cpu_time_ns / 1e6:.0f} "
          f"csw={r.voluntary_csw}+{r.involuntary_csw} cpus={sorted(r.cpus_used)}"
          for r in reports)])
    return result


# Two CPU-bound threads of one Python process share its GIL, not the CPUs: how evenly
# they split it is the interpreter's doing, so the spread check does not apply here.
@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, max_spread_pct=100.0)
def cgroup_def_pcomm_and_policy_pass_through(ctx: Ctx) -> AssertResult:
    # The CgroupDef path: pcomm makes threads of one leader, policy is applied to each.
    cg = ctx.cgroups.path("defs")
    shapes: set[tuple[int, int]] = set()  # (processes, threads) in the cgroup, sampled
    comms: set[str] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):  # sampling period
            try:
                procs = (cg / "cgroup.procs").read_text().split()
                threads = (cg / "cgroup.threads").read_text().split()
                comms.update(Path(f"/proc/{p}/comm").read_text().strip() for p in procs)
            except OSError:
                continue  # not created yet, or already removed
            if procs:
                shapes.add((len(procs), len(threads)))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = execute_defs(ctx, [CgroupDef("defs", workers=2, work=work.SpinWait(),
                                              pcomm="defapp", policy=SchedPolicy.batch())])
    finally:
        stop.set()
        sampler.join()
    tids = [r.tid for r in result.reports]
    assert len(set(tids)) == 2 and all(r.work_units > 0 for r in result.reports), tids
    # One process (the leader) holding itself and two worker threads.
    assert (1, 3) in shapes and comms == {"defapp"}, (shapes, comms)
    result.details.append(f"tids={tids} units={[r.work_units for r in result.reports]} "
                          f"(procs, threads) seen={sorted(shapes)} comms={sorted(comms)}")
    return result


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3, staged_schedulers=[SIMPLE])
def ext_policy_follows_the_kernel(ctx: Ctx) -> AssertResult:
    """SCHED_EXT: refused clearly without CONFIG_SCHED_CLASS_EXT; accepted (policy 7,
    fair class) with it and no scheduler loaded; under scx_simple, run by sched_ext."""
    out = [f"sched_ext_state={SCX_STATE.read_text().strip() if SCX_STATE.exists() else 'absent'}"]
    cfg = WorkloadConfig(workers=2, work=work.Bursty(0.002, 0.01), policy=SchedPolicy.ext())
    if not SCX_STATE.exists():
        try:
            WorkloadHandle.spawn(cfg).kill()
        except Exception as exc:
            assert "CONFIG_SCHED_CLASS_EXT" in str(exc), exc
            out.append(f"refused: {exc}")
            return AssertResult(details=out)
        raise AssertionError("SCHED_EXT accepted by a kernel without sched_ext")
    seen, reports = _spawn_sample_collect(ctx, "ext_idle", cfg)
    for r in reports:
        assert seen[r.tid]["policy"] == SCHED_EXT and r.work_units > 0, (r, seen[r.tid])
        # Accepted, but no BPF scheduler: the task runs in the fair class.
        assert seen[r.tid].get("ext.enabled", 0) == 0, seen[r.tid]
    out.append(f"no scheduler: accepted, policy_seen={[seen[r.tid]['policy'] for r in reports]}"
               f" ext.enabled={[seen[r.tid].get('ext.enabled') for r in reports]}")
    ctx.scheduler.attach(SIMPLE)  # staged: the run knows a scheduler may load
    try:
        seen, reports = _spawn_sample_collect(ctx, "ext_loaded", cfg)
        ops = Path("/sys/kernel/sched_ext/root/ops")
        for r in reports:
            assert seen[r.tid]["policy"] == SCHED_EXT and r.work_units > 0, (r, seen[r.tid])
            assert seen[r.tid].get("ext.enabled", 1) == 1, seen[r.tid]  # run by sched_ext
        out.append(f"scx_simple loaded ({ops.read_text().strip()}): "
                   f"policy_seen={[seen[r.tid]['policy'] for r in reports]} "
                   f"ext.enabled={[seen[r.tid].get('ext.enabled') for r in reports]} "
                   f"units={[r.work_units for r in reports]}")
    finally:
        ctx.scheduler.detach()
    return AssertResult(details=out)
