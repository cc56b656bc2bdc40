"""Helpers for custom scenarios (seed 000): `dfl_wl`, `setup_cgroups`, `collect_all`.

A custom scenario keeps control of the run: it sets up `cg_0..cg_{n-1}` with
`setup_cgroups`, sleeps against `ctx.duration`, changes things mid-run through
`ctx.cgroups`, and judges the reports itself. The cgroups and any worker left
running are removed when the `with` block ends, even when its body raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ktstr.checks import Assert, AssertResult
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.execute import kill_and_remove
from ktstr.work import SpinWait
from ktstr.workload import WorkloadConfig, WorkloadHandle


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
