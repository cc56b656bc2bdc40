"""VM bodies proving each public cgroup op from the kernel's side (run by test_ops.py).

Each body is one step sequence on one theme. A step's setup may be a function of
ctx, called right after the step's ops: `observe(fn)` uses that to read the
kernel's files at that exact point (`ctx.current_step` tells which step) and
contributes no cgroup. The assertions run in the guest, on what was read.

- `ops_cgroup_lifecycle_and_cpusets`: add_cgroup, set_cpuset, swap_cpusets,
  clear_cpuset, set_affinity, spawn, stop_cgroup, remove_cgroup.
- `ops_freeze_move_capture_on_backdrop`: freeze_cgroup, unfreeze_cgroup,
  move_all_tasks, capture_cgroup_procs, over a `Backdrop`.
- `spawn_diverse_rotates_work_types`: `spawn_diverse` in a custom scenario.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ktstr import (
    AssertResult,
    Backdrop,
    CgroupDef,
    CpusetSpec,
    Ctx,
    HoldSpec,
    Op,
    Step,
    collect_all,
    execute_steps,
    ktstr_test,
    spawn_diverse,
    work,
)
from ktstr.scenario.custom import DIVERSE
from ktstr.system.proc import task_cpu, task_schedstat
from ktstr.topology import parse_cpulist
from tests.vm.probes import cgroup_pids, read, reports_by_cgroup

log = logging.getLogger(__name__)  # the guest's log lands in the console log (kmsg)


def observe(fn: Callable[[Ctx], None]) -> Callable[[Ctx], list[CgroupDef]]:
    """A step setup that only reads: `fn(ctx)` runs right after the step's ops."""
    def setup(ctx: Ctx) -> list[CgroupDef]:
        fn(ctx)
        return []
    return setup


def cg_file(ctx: Ctx, cgroup: str, name: str) -> str | None:
    text = read(str(ctx.cgroups.path(cgroup) / name))
    return None if text is None else text.strip()


def cpus_allowed(pid: int) -> frozenset[int]:
    """`Cpus_allowed_list` of /proc/<pid>/status: the mask the kernel enforces."""
    for line in (read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return parse_cpulist(line.split(":", 1)[1].strip())
    raise AssertionError(f"/proc/{pid}/status has no Cpus_allowed_list (task gone?)")


def cpu_ns(pid: int) -> int:
    """Nanoseconds `pid` has been on a CPU (schedstat field 1)."""
    return task_schedstat(pid)[0]


# -- lifecycle and cpusets -------------------------------------------------------------------


@ktstr_test(llcs=2, cores=2, threads=1, duration_s=3)
def ops_cgroup_lifecycle_and_cpusets(ctx: Ctx) -> AssertResult:
    seen: dict[str, dict[str, object]] = {}

    def snap(tag: str) -> Callable[[Ctx], list[CgroupDef]]:
        def read_all(c: Ctx) -> None:
            out: dict[str, object] = {"step": c.current_step}
            for cg in ("a", "b"):
                d = c.cgroups.path(cg)
                out[f"{cg}.exists"] = d.is_dir()
                if not d.is_dir():
                    continue
                out[f"{cg}.cpus"] = cg_file(c, cg, "cpuset.cpus")
                out[f"{cg}.eff"] = parse_cpulist(cg_file(c, cg, "cpuset.cpus.effective") or "")
                pids = cgroup_pids(d)
                out[f"{cg}.procs"] = pids
                out[f"{cg}.on"] = {task_cpu(p) for p in pids}
                out[f"{cg}.allowed"] = {cpus_allowed(p) for p in pids}
            seen[tag] = out
        return observe(read_all)

    llc0, llc1 = ctx.topo.llc_aligned_cpuset(0), ctx.topo.llc_aligned_cpuset(1)
    everything = frozenset(range(ctx.topo.cpus))
    result = execute_steps(ctx, [
        Step(ops=[Op.add_cgroup("a"), Op.add_cgroup("b"),
                  Op.set_cpuset("a", CpusetSpec.llc(0)), Op.set_cpuset("b", CpusetSpec.llc(1)),
                  Op.spawn("a", work.SpinWait(), 2), Op.spawn("b", work.SpinWait(), 1)],
             setup=snap("spawned"), hold=HoldSpec.fixed(0.6)),
        Step(setup=snap("pinned"), hold=HoldSpec.fixed(0)),
        Step(ops=[Op.swap_cpusets("a", "b")], setup=snap("swapped"), hold=HoldSpec.fixed(0.6)),
        Step(setup=snap("swapped_end"), hold=HoldSpec.fixed(0)),
        Step(ops=[Op.clear_cpuset("a"), Op.set_affinity("a", CpusetSpec.exact([1]))],
             setup=snap("cleared"), hold=HoldSpec.fixed(0.6)),
        Step(setup=snap("affine_end"), hold=HoldSpec.fixed(0)),
        Step(ops=[Op.stop_cgroup("a")], setup=snap("stopped"), hold=HoldSpec.fixed(0)),
        Step(ops=[Op.remove_cgroup("a")], setup=snap("removed"), hold=HoldSpec.fixed(0.2)),
    ])

    s = seen["spawned"]  # add_cgroup, set_cpuset, spawn
    assert s["a.exists"] and s["b.exists"], s
    assert (s["a.cpus"], s["b.cpus"]) == ("0-1", "2-3"), s
    assert (s["a.eff"], s["b.eff"]) == (llc0, llc1), s
    a_pids, b_pids = s["a.procs"], s["b.procs"]
    assert isinstance(a_pids, list) and isinstance(b_pids, list)
    assert len(a_pids) == 2 and len(b_pids) == 1, s
    assert s["a.allowed"] == {llc0} and s["b.allowed"] == {llc1}, s
    p = seen["pinned"]  # where they ran: the kernel's last CPU of each task
    assert p["a.on"] <= llc0 and p["b.on"] <= llc1, p  # type: ignore[operator]
    w = seen["swapped"]  # swap_cpusets
    assert (w["a.cpus"], w["b.cpus"]) == ("2-3", "0-1"), w
    assert w["a.allowed"] == {llc1} and w["b.allowed"] == {llc0}, w
    e = seen["swapped_end"]
    assert e["a.on"] <= llc1 and e["b.on"] <= llc0, e  # type: ignore[operator]
    c = seen["cleared"]  # clear_cpuset, then set_affinity
    assert c["a.cpus"] == "" and c["a.eff"] == everything, c
    assert c["a.allowed"] == {frozenset({1})}, c
    assert c["b.cpus"] == "0-1", c  # untouched
    assert seen["affine_end"]["a.on"] == {1}, seen["affine_end"]
    t = seen["stopped"]  # stop_cgroup: workers gone, cgroup stays
    assert t["a.exists"] and t["a.procs"] == [] and t["b.procs"] == b_pids, t
    r = seen["removed"]  # remove_cgroup
    assert not r["a.exists"] and r["b.exists"], r

    log.info("ops figures: %s", {k: {n: v for n, v in d.items() if n.endswith((".on", ".cpus"))}
                                 for k, d in seen.items()})
    by = reports_by_cgroup(result)
    assert sorted(by) == ["a", "b"], sorted(by)
    assert {x.tid for x in by["a"]} == set(a_pids) and {x.step for x in by["a"]} == {7}
    assert {x.step for x in by["b"]} == {8}  # judged after the last step
    for x in by["a"]:  # ran on LLC 0, then LLC 1 after the swap
        assert x.cpus_used & llc0 and x.cpus_used & llc1, (x.tid, x.cpus_used)
        assert x.work_units > 0
    return result


# -- freeze, move, capture, on a backdrop ----------------------------------------------------


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def ops_freeze_move_capture_on_backdrop(ctx: Ctx) -> AssertResult:
    caps: dict[str, list[int]] = {}
    seen: dict[str, dict[str, object]] = {}

    def snap(tag: str) -> Callable[[Ctx], list[CgroupDef]]:
        def read_all(c: Ctx) -> None:
            out: dict[str, object] = {"t": time.monotonic()}
            for cg in ("frz", "ctl", "dst"):
                out[f"{cg}.procs"] = cgroup_pids(c.cgroups.path(cg))
                out[f"{cg}.freeze"] = cg_file(c, cg, "cgroup.freeze")
                events = cg_file(c, cg, "cgroup.events") or ""
                out[f"{cg}.frozen"] = "frozen 1" in events.splitlines()
            for who in ("frz", "ctl"):
                if who in caps:
                    (pid,) = caps[who]
                    out[f"{who}.ns"] = cpu_ns(pid)
                    out[f"{who}.cgroup"] = (read(f"/proc/{pid}/cgroup") or "").strip()
            seen[tag] = out
        return observe(read_all)

    backdrop = (Backdrop().push_cgroup(CgroupDef("frz", workers=1))
                .push_cgroup(CgroupDef("ctl", workers=1))
                .extend_ops([Op.add_cgroup("dst")]))
    result = execute_steps(ctx, [
        Step(ops=[Op.capture_cgroup_procs("frz", "frz"), Op.capture_cgroup_procs("ctl", "ctl")],
             setup=snap("running"), hold=HoldSpec.fixed(0.4)),
        Step(ops=[Op.freeze_cgroup("frz")], setup=snap("frozen"), hold=HoldSpec.fixed(0.8)),
        Step(setup=snap("frozen_end"), hold=HoldSpec.fixed(0)),
        Step(ops=[Op.unfreeze_cgroup("frz")], setup=snap("thawed"), hold=HoldSpec.fixed(0.6)),
        Step(setup=snap("thawed_end"), hold=HoldSpec.fixed(0)),
        Step(ops=[Op.move_all_tasks("frz", "dst"), Op.capture_cgroup_procs("frz_after", "frz"),
                  Op.capture_cgroup_procs("dst_after", "dst")],
             setup=snap("moved"), hold=HoldSpec.fixed(0.3)),
    ], captures=caps, backdrop=backdrop)

    (frz,), (ctl,) = caps["frz"], caps["ctl"]
    run = seen["running"]  # the backdrop: two cgroups with one worker each, and dst
    assert run["frz.procs"] == [frz] and run["ctl.procs"] == [ctl], run
    assert run["dst.procs"] == [] and run["frz.freeze"] == "0" and not run["frz.frozen"], run
    f0, f1 = seen["frozen"], seen["frozen_end"]  # freeze_cgroup
    assert f0["frz.freeze"] == "1" and f0["frz.frozen"] and f1["frz.frozen"], f0
    assert not f0["ctl.frozen"], f0
    span = f1["t"] - f0["t"]  # type: ignore[operator]
    assert span >= 0.75, span
    frz_ran = f1["frz.ns"] - f0["frz.ns"]  # type: ignore[operator]
    ctl_ran = f1["ctl.ns"] - f0["ctl.ns"]  # type: ignore[operator]
    # A loaded host may starve the guest's vCPUs, so the floors are low; unfrozen, the
    # worker got 0.5-1 s of CPU in these windows (mutation check: freeze made a no-op).
    assert frz_ran < 2_000_000, f"frozen worker ran {frz_ran} ns while frozen"
    assert ctl_ran > 20_000_000, f"control worker ran only {ctl_ran} ns meanwhile"
    log.info("ops figures: frozen %.2f s: frozen worker ran %d ns, control %d ns", span,
             frz_ran, ctl_ran)
    t0, t1 = seen["thawed"], seen["thawed_end"]  # unfreeze_cgroup
    assert t0["frz.freeze"] == "0" and not t0["frz.frozen"], t0
    thawed_ran = t1["frz.ns"] - t0["frz.ns"]  # type: ignore[operator]
    assert thawed_ran > 20_000_000, f"thawed worker ran only {thawed_ran} ns"
    m = seen["moved"]  # move_all_tasks, capture_cgroup_procs
    assert m["frz.procs"] == [] and frz in m["dst.procs"], m  # type: ignore[operator]
    assert str(m["frz.cgroup"]).endswith("/dst"), m
    assert caps["frz_after"] == [] and caps["dst_after"] == m["dst.procs"], caps
    assert m["ctl.procs"] == [ctl], m

    by = reports_by_cgroup(result)  # the moved worker is judged with dst, after the last step
    assert {r.tid for r in result.reports} == {frz, ctl}
    assert all(r.step == 6 and r.work_units > 0 for r in result.reports), result.reports
    assert sorted(by) == ["ctl", "frz"], sorted(by)  # the cgroup each worker started in
    frozen_gap = next(r for r in result.reports if r.tid == frz).max_gap_ms
    log.info("ops figures: thawed worker ran %d ns in 0.6 s; its max gap %.0f ms",
             thawed_ran, frozen_gap)
    assert frozen_gap >= 500, f"a 0.8 s freeze left a {frozen_gap} ms gap"
    return result


# -- spawn_diverse -------------------------------------------------------------------------


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=2, workers_per_cgroup=1)
def spawn_diverse_rotates_work_types(ctx: Ctx) -> AssertResult:
    names = [f"d{i}" for i in range(len(DIVERSE) + 1)]  # one past the rotation: it wraps
    for name in names:
        ctx.cgroups.create(name)
    handles = spawn_diverse(ctx, names)
    time.sleep(ctx.duration / 2)
    procs = {n: cgroup_pids(ctx.cgroups.path(n)) for n in names}  # the kernel's view
    time.sleep(ctx.duration / 2)
    result = collect_all(handles, ctx.checks)
    expected = ["SpinWait", "Bursty", "IoSyncWrite", "Mixed", "YieldHeavy", "SpinWait"]
    by = reports_by_cgroup(result)
    for name, want in zip(names, expected, strict=True):
        workers = 2 if want == "IoSyncWrite" else 1
        assert len(procs[name]) == workers, (name, procs[name])
        got = by[name]
        assert [r.work_type for r in got] == [want] * workers, (name, got)
        assert {r.tid for r in got} == set(procs[name]), (name, procs[name])
        assert all(r.work_units > 0 for r in got), (name, got)
    yh = by["d4"][0]  # YieldHeavy really yields: the kernel counted its switches
    assert yh.voluntary_csw + yh.involuntary_csw > 100, yh
    assert Path(ctx.cgroups.path("d0")).is_dir()
    return result
