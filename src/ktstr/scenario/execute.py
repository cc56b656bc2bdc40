"""`execute_defs`: run a list of `CgroupDef`s for the test's duration and judge them.

Order: every spec is resolved against `ctx.topo` before anything is created (a
bad cpuset or an affinity intent the topology cannot meet fails before a
process is forked); then each cgroup is created, its cpuset written, an
`AffinityIntent` resolved again on the cgroup's effective cpuset, and its
workers forked into it (they wait at a start barrier);
all cgroups start together; the run holds `ctx.settle + ctx.duration`; each
cgroup's workers are stopped and collected and judged with
`ctx.checks.assert_cgroup`. Workers are killed and cgroups removed in a
`finally`, whatever happened.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ktstr.checks import AssertResult
from ktstr.errors import ConfigError
from ktstr.scenario.cgroup_def import CgroupDef
from ktstr.scenario.ctx import Ctx
from ktstr.system.fs import SysIoError
from ktstr.workload import AffinityIntent, WorkloadConfig, WorkloadHandle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Plan:
    """One def with everything resolved against the topology."""

    cgdef: CgroupDef
    cpuset: frozenset[int] | None
    config: WorkloadConfig


def plan_defs(ctx: Ctx, defs: Sequence[CgroupDef]) -> list[_Plan]:
    """Resolve cpusets, affinities, worker counts and work overrides; no side effects."""
    seen: set[str] = set()
    plans: list[_Plan] = []
    for d in defs:
        if d.name in seen:
            raise ConfigError(f"cgroup {d.name!r} is defined twice in one scenario; hint: "
                              "give each CgroupDef its own name")
        seen.add(d.name)
        work = d.work
        if d.swappable and ctx.work_type_override is not None:
            work = ctx.work_type_override
        workers = d.workers or ctx.workers_per_cgroup
        cpuset = d.resolved_cpuset(ctx.topo)
        cfg = WorkloadConfig(workers=workers, work=work, policy=d.policy, nice=d.nice,
                             affinity=d.worker_affinity(ctx.topo, cpuset, workers),
                             pcomm=d.pcomm)
        plans.append(_Plan(d, cpuset, cfg))
    return plans


def placed_config(ctx: Ctx, plan: _Plan) -> WorkloadConfig:
    """The plan's config once its cgroup exists: an `AffinityIntent` is resolved again
    on the cgroup's `cpuset.cpus.effective` (what the kernel really lets the workers
    use, a parent's restriction included) instead of the planned cpuset."""
    if not isinstance(plan.cgdef.affinity, AffinityIntent):
        return plan.config
    try:
        cpus = ctx.cgroups.effective_cpus(plan.cgdef.name)
    except SysIoError as err:
        if err.errno != errno.ENOENT:
            raise
        return plan.config  # no cpuset controller here: the planned CPUs are all there is
    affinity = plan.cgdef.worker_affinity(ctx.topo, cpus, plan.config.workers)
    return replace(plan.config, affinity=affinity)


def execute_defs(ctx: Ctx, defs: Sequence[CgroupDef]) -> AssertResult:
    """Run `defs` together for `ctx.settle + ctx.duration` seconds; one merged result."""
    plans = plan_defs(ctx, defs)
    created: list[str] = []
    handles: list[WorkloadHandle] = []
    try:
        for idx, plan in enumerate(plans):
            name = plan.cgdef.name
            ctx.cgroups.create(name)
            created.append(name)
            if plan.cpuset is not None:
                ctx.cgroups.set_cpuset(name, plan.cpuset)
            handles.append(WorkloadHandle.spawn(placed_config(ctx, plan),
                                                cgroup_dir=ctx.cgroups.path(name), group_idx=idx))
        for handle in handles:
            handle.start()
        time.sleep(ctx.settle + ctx.duration)  # the hold: the workers run meanwhile
        result = AssertResult.ok()
        for plan, handle in zip(plans, handles, strict=True):
            reports = handle.stop_and_collect()
            result.merge(ctx.checks.assert_cgroup(reports, plan.cpuset, name=plan.cgdef.name))
        return result
    finally:
        kill_and_remove(ctx, handles, created)


def kill_and_remove(ctx: Ctx, handles: Sequence[WorkloadHandle], cgroups: Sequence[str]) -> None:
    """Kill workers, then remove cgroups; failures are logged so the original error wins."""
    for handle in handles:
        try:
            handle.kill()
        except Exception as err:
            log.error("killing workers %s failed: %s", handle.pids, err)
    for name in reversed(cgroups):
        try:
            ctx.cgroups.remove(name)
        except Exception as err:
            log.error("removing cgroup %s failed: %s", name, err)
