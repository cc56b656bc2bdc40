"""Helpers for custom scenarios: `dfl_wl`, `setup_cgroups`, `collect_all`,
`spawn_diverse`.

A custom scenario keeps control of the run: it sets up `cg_0..cg_{n-1}` with
`setup_cgroups`, sleeps against `ctx.duration`, changes things mid-run through
`ctx.cgroups`, and judges the reports itself. The cgroups and any worker left
running are removed when the `with` block ends, even when its body raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ktstr.checks import Assert, AssertResult
from ktstr.errors import ConfigError
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.execute import kill_and_remove
from ktstr.work import Bursty, IoSyncWrite, Mixed, SpinWait, WorkType, YieldHeavy
from ktstr.workload import WorkloadConfig, WorkloadHandle

#: The rotation of `spawn_diverse`: cgroup i runs DIVERSE[i % 5].
DIVERSE: tuple[type[WorkType], ...] = (SpinWait, Bursty, IoSyncWrite, Mixed, YieldHeavy)
#: Workers of an IoSyncWrite cgroup, whatever ctx.workers_per_cgroup says: more
#: blocking fdatasync writers would drown the scenario in IO wait.
DIVERSE_IO_WORKERS = 2


def dfl_wl(ctx: Ctx) -> WorkloadConfig:
    """`ctx.workers_per_cgroup` SpinWait workers (ignores `work_type_override`)."""
    return WorkloadConfig(workers=ctx.workers_per_cgroup, work=SpinWait())


@contextmanager
def setup_cgroups(ctx: Ctx, n: int, wl: WorkloadConfig) -> Iterator[list[WorkloadHandle]]:
    """Create cg_0..cg_{n-1}, fork `wl` into each, start them all; yield the handles
    in cgroup order. On exit the workers are killed and the cgroups removed."""
    names: list[str] = []
    handles: list[WorkloadHandle] = []
    try:
        for i in range(n):
            name = f"cg_{i}"
            ctx.cgroups.create(name)
            names.append(name)
            handles.append(WorkloadHandle.spawn(wl, cgroup_dir=ctx.cgroups.path(name),
                                                group_idx=i))
        for handle in handles:
            handle.start()
        yield handles
    finally:
        kill_and_remove(ctx, handles, names)


def collect_all(handles: Sequence[WorkloadHandle], checks: Assert) -> AssertResult:
    """Stop every handle, judge each one's reports as a cgroup (no cpuset), merge.

    Stats entries are labelled with the handle's cgroup directory name."""
    result = AssertResult.ok()
    for handle in handles:
        name = handle.cgroup_dir.name if handle.cgroup_dir is not None else ""
        result.merge(checks.assert_cgroup(handle.stop_and_collect(), None, name=name))
    return result


def diverse_configs(ctx: Ctx, n: int) -> list[WorkloadConfig]:
    """The workloads `spawn_diverse` gives cgroups 0..n-1: the DIVERSE rotation with
    `ctx.workers_per_cgroup` workers each, IoSyncWrite always with 2."""
    configs = []
    for i in range(n):
        work = DIVERSE[i % len(DIVERSE)]()
        workers = DIVERSE_IO_WORKERS if isinstance(work, IoSyncWrite) else ctx.workers_per_cgroup
        configs.append(WorkloadConfig(workers=workers, work=work))
    return configs


def spawn_diverse(ctx: Ctx, names: Sequence[str]) -> list[WorkloadHandle]:
    """Fork a different kind of load into each of the existing cgroups `names`
    (rotating SpinWait, Bursty, IoSyncWrite, Mixed, YieldHeavy) and start them all;
    the handles come back in `names` order, for `collect_all`.

    The cgroups must exist (`ctx.cgroups.create`): who made them removes them. If a
    spawn fails, the workers already forked are killed before the error propagates.
    """
    names = list(names)
    for name in names:
        if not ctx.cgroups.exists(name):
            raise ConfigError(f"spawn_diverse: cgroup {name!r} does not exist; hint: create "
                              f"it first with ctx.cgroups.create({name!r})")
    handles: list[WorkloadHandle] = []
    try:
        for i, (name, cfg) in enumerate(zip(names, diverse_configs(ctx, len(names)),
                                            strict=True)):
            handles.append(WorkloadHandle.spawn(cfg, cgroup_dir=ctx.cgroups.path(name),
                                                group_idx=i))
    except BaseException:
        kill_and_remove(ctx, handles, ())
        raise
    for handle in handles:
        handle.start()
    return handles
