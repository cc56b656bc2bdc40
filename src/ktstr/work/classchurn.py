"""Cross-task affinity, scheduling-class and cgroup churn: affinity changes made by
other tasks, scheduling-class transitions, cgroup migration paths.

- `CrossAffinityChurn`: each worker rewrites its cgroup siblings' affinity: it
  lists its own cgroup's `cgroup.procs`, picks a sibling and pins it to one
  random CPU of the cgroup's `cpuset.cpus.effective` with
  `sched_setaffinity(sibling)`, so the migration is forced on a task that is
  running elsewhere (`__set_cpus_allowed_ptr` on a remote task,
  `migration_cpu_stop`). It needs a dedicated cgroup: in the root cgroup the
  siblings would be the system's own tasks, so there it only re-pins itself
  (and says so).
- `PolicyChurn`: the worker's own policy stepped SCHED_OTHER -> BATCH -> IDLE
  (-> FIFO -> RR with CAP_SYS_NICE) with `sched_setscheduler(2)`, one step per
  iteration: `__sched_setscheduler`, `check_class_changed`, the switched_from /
  switched_to class callbacks.
- `CgroupChurn(groups, cycle_ms)`: the worker creates `groups` sibling cgroups
  next to its own (same `cpuset.cpus`/`cpuset.mems`, so it never leaves its
  CPUs) and cycles its membership home -> sibling 0 -> ... -> home by writing
  its pid to `cgroup.procs` every `cycle_ms`: `cgroup_attach_task`,
  `cpu_cgroup_attach` / `sched_move_task`, `cpuset_attach`.
- `CgroupAttachStorm`: the worker forks transient children that exit at once
  (after a random 0..64-step spin) and writes each child's pid to a sibling
  cgroup's `cgroup.procs` while it is exiting, racing the attach path
  (`cgroup_attach_task`, the thread-group leader lookup) against `do_exit` /
  `cgroup_exit`. The kernel accepts the write of an exiting task and skips
  it, so every 4th child is checked before it is reaped: `/proc/<child>/cgroup`
  says whether the move landed before the exit (`attach_landed` of
  `attach_sampled`).

Cgroup files are opened once and written with `pwrite`, so the hot loop does
one system call per move and no allocation. What a guest cannot do (no
cgroup2, no permission to create cgroups, no CAP_SYS_NICE) is said with
`WorkLoop.note` and the rest still runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
from dataclasses import dataclass

from ktstr.system import fs
from ktstr.system.cgroup import CGROUP_ROOT, CgroupFs, cgroup2_mount
from ktstr.system.cpu import online_cpus
from ktstr.system.proc import task_cgroup
from ktstr.validators import count, milliseconds
from ktstr.work.base import WorkType
from ktstr.work.loop import WorkLoop, spin_batch

CROSS_AFFINITY_SPIN_ITERS = 1024
#: Iterations between two re-reads of the cgroup's member list.
CROSS_AFFINITY_REFRESH = 64
CGROUP_CHURN_GROUPS = 4
CGROUP_CHURN_CYCLE_MS = 10.0
#: Multiply-add steps a CgroupAttachStorm child may spin before exiting (random,
#: 0..this), so some moves land before the exit and some during it.
ATTACH_STORM_CHILD_SPIN_MAX = 64
#: Every this many children, CgroupAttachStorm reads where the child ended up.
ATTACH_STORM_SAMPLE_EVERY = 4
#: How long a worker waits for the kernel to free its sibling cgroups at the end.
CGROUP_REMOVE_TIMEOUT_S = 2.0

#: (policy, priority) steps of PolicyChurn; the RT ones need CAP_SYS_NICE.
_NORMAL_STEPS = ((os.SCHED_OTHER, 0), (os.SCHED_BATCH, 0), (os.SCHED_IDLE, 0))
_RT_STEPS = ((os.SCHED_FIFO, 1), (os.SCHED_RR, 1))
POLICY_NAMES = {os.SCHED_OTHER: "other", os.SCHED_BATCH: "batch", os.SCHED_IDLE: "idle",
                os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}


def _cgroup_of(pid: int) -> str | None:
    """The cgroup2 path `pid` is in; None when its /proc entry is gone."""
    try:
        return task_cgroup(pid)
    except fs.SysIoError as err:
        if err.errno in (errno.ENOENT, errno.ENODEV):
            return None
        raise


def cgroup_fs() -> CgroupFs | None:
    """The guest's cgroup2 hierarchy, or None when none is mounted."""
    root = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.procs").exists() else cgroup2_mount()
    return CgroupFs(root) if root is not None else None


def sibling_names(home: str, tag: str, n: int) -> list[str]:
    """Names of `n` cgroups next to `home` (under its parent), private to `tag`.

    In the root cgroup (`home == ""`) there is no parent: they become children of
    the root instead.
    """
    parent, _, leaf = home.rpartition("/")
    stem = f"{leaf or 'ktstr'}_{tag}"
    return [f"{parent}/{stem}_{i}" if parent else f"{stem}_{i}" for i in range(n)]


def allowed_cpus(cgfs: CgroupFs | None, home: str) -> list[int]:
    """CPUs a task of `home` may be pinned to: its effective cpuset, else the online CPUs."""
    if cgfs is not None:
        text = fs.read_optional(cgfs.path(home) / "cpuset.cpus.effective")
        if text and text.strip():
            return sorted(fs.read_cpulist(cgfs.path(home) / "cpuset.cpus.effective"))
    return sorted(online_cpus())


def _open_procs(cgfs: CgroupFs, name: str) -> int:
    path = cgfs.path(name) / "cgroup.procs"
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise fs.SysIoError(f"cannot open {path} for writing: {err.strerror}", str(path),
                            err.errno or 0) from err


def _make_siblings(cgfs: CgroupFs, home: str, names: list[str]) -> None:
    """Create `names`, copying home's cpuset so a move never widens the worker's CPUs."""
    copy: list[tuple[str, str]] = []
    for knob in ("cpuset.cpus", "cpuset.mems"):
        text = fs.read_optional(cgfs.path(home) / knob)
        if text is not None and text.strip():
            copy.append((knob, text.strip()))
    for name in names:
        cgfs.create(name)
        for knob, value in copy:
            fs.write_text(cgfs.path(name) / knob, value)


def _remove_siblings(cgfs: CgroupFs, names: list[str], loop: WorkLoop) -> None:
    for name in names:
        try:
            cgfs.remove(name, kill=True, timeout=CGROUP_REMOVE_TIMEOUT_S)
        except Exception as err:  # the scenario's cleanup removes the parent anyway
            loop.note(f"could not remove sibling cgroup {name}: {err}")


@dataclass(frozen=True, slots=True)
class CrossAffinityChurn(WorkType):
    """Pin a random cgroup sibling to a random allowed CPU each iteration, then spin."""

    def run(self, loop: WorkLoop) -> None:
        me = os.getpid()
        rng = random.Random(me)
        cgfs = cgroup_fs()
        home = task_cgroup("self") if cgfs is not None else ""
        cpus = [(c,) for c in allowed_cpus(cgfs, home)]  # masks built once, not per call
        dedicated = cgfs is not None and home != ""
        if not dedicated:
            loop.note("CrossAffinityChurn needs a dedicated cgroup (the worker is in the root "
                      "cgroup or there is no cgroup2): it re-pinned only itself")
        siblings: list[int] = []
        writes = refused = 0
        x = 1
        i = 0
        while loop.running:
            if dedicated and (i % CROSS_AFFINITY_REFRESH == 0 or not siblings):
                siblings = [p for p in _procs(cgfs, home) if p != me]
                if not siblings:
                    loop.note("CrossAffinityChurn found no sibling in its cgroup at times: "
                              "it re-pinned itself meanwhile")
            i += 1
            target = rng.choice(siblings) if siblings else 0
            mask = rng.choice(cpus)
            try:
                os.sched_setaffinity(target, mask)
                writes += 1
            except OSError as err:
                refused += 1
                if err.errno == errno.ESRCH:
                    siblings = []  # a sibling exited: re-read the member list
                elif err.errno == errno.EINVAL:
                    cpus = [(c,) for c in allowed_cpus(cgfs, home)]  # the cpuset changed
                elif err.errno == errno.EPERM:
                    loop.note(f"sched_setaffinity on sibling {target} refused (EPERM): "
                              "workers of another user or without CAP_SYS_NICE")
                    siblings = [p for p in siblings if p != target]
                else:
                    raise
            x = spin_batch(CROSS_AFFINITY_SPIN_ITERS, x)
            loop.spin()
            loop.iterations += 1
        loop.metrics["affinity_writes"] = writes
        loop.metrics["affinity_refused"] = refused


def _procs(cgfs: CgroupFs | None, home: str) -> list[int]:
    if cgfs is None:
        return []
    try:
        return cgfs.procs(home)
    except fs.SysIoError:
        return []


def policy_steps(rt_allowed: bool) -> list[tuple[int, int]]:
    """PolicyChurn's cycle: OTHER, BATCH, IDLE, then FIFO and RR when RT is allowed."""
    return [*_NORMAL_STEPS, *(_RT_STEPS if rt_allowed else ())]


@dataclass(frozen=True, slots=True)
class PolicyChurn(WorkType):
    """Step the worker's own policy OTHER -> BATCH -> IDLE (-> FIFO -> RR), one per unit."""

    def run(self, loop: WorkLoop) -> None:
        steps = policy_steps(rt_allowed=True)
        params = {prio: os.sched_param(prio) for _, prio in steps}
        counts = dict.fromkeys(POLICY_NAMES, 0)
        i = 0
        while loop.running:
            policy, prio = steps[i % len(steps)]
            i += 1
            try:
                os.sched_setscheduler(0, policy, params[prio])
                counts[policy] += 1
            except PermissionError:
                if policy in (os.SCHED_FIFO, os.SCHED_RR):
                    loop.note("no CAP_SYS_NICE: PolicyChurn skipped its SCHED_FIFO/SCHED_RR "
                              "steps")
                    steps = policy_steps(rt_allowed=False)
                elif policy == os.SCHED_OTHER:
                    # Leaving SCHED_IDLE needs RLIMIT_NICE or CAP_SYS_NICE: stuck in IDLE.
                    loop.note("PolicyChurn could not leave SCHED_IDLE (RLIMIT_NICE, no "
                              "CAP_SYS_NICE): it stayed in SCHED_IDLE")
                    steps = [(os.SCHED_IDLE, 0)]
                else:
                    raise
            loop.spin()
            loop.iterations += 1
        with contextlib.suppress(OSError):  # report-writing does not run as RT or IDLE
            os.sched_setscheduler(0, os.SCHED_OTHER, params[0])
        for policy, n in counts.items():
            loop.metrics[f"set_{POLICY_NAMES[policy]}"] = n
        loop.metrics["policy_changes"] = sum(counts.values())


@dataclass(frozen=True, slots=True, init=False)
class CgroupChurn(WorkType):
    """Cycle the worker between its cgroup and `groups` siblings, one move per `cycle_ms`."""

    groups: int
    cycle_ms: float

    def __init__(self, groups: int = CGROUP_CHURN_GROUPS,
                 cycle_ms: float = CGROUP_CHURN_CYCLE_MS) -> None:
        object.__setattr__(self, "groups", count(groups, "CgroupChurn groups"))
        object.__setattr__(self, "cycle_ms", milliseconds(cycle_ms, "CgroupChurn cycle_ms"))

    def run(self, loop: WorkLoop) -> None:
        cycle_s = self.cycle_ms / 1000
        cgfs = cgroup_fs()
        if cgfs is None:
            loop.note("no cgroup2 hierarchy mounted: CgroupChurn only spun")
            _spin_until_stopped(loop, cycle_s)
            return
        pid = os.getpid()
        home = task_cgroup("self")
        names = sibling_names(home, f"churn{pid}", self.groups)
        fds: list[int] = []
        try:
            try:
                _make_siblings(cgfs, home, names)
                fds = [_open_procs(cgfs, n) for n in (home, *names)]
            except fs.SysIoError as err:
                loop.note(f"CgroupChurn could not create its sibling cgroups ({err}): it only "
                          "spun")
                _spin_until_stopped(loop, cycle_s)
                return
            me = str(pid).encode()
            moves = failed = 0
            at = 0
            while loop.running:
                at = (at + 1) % len(fds)
                try:
                    os.pwrite(fds[at], me, 0)
                    moves += 1
                except OSError as err:
                    failed += 1
                    loop.note(f"a move to cgroup {(home, *names)[at]!r} failed: "
                              f"{err.strerror}")
                loop.spin_for(cycle_s)
                loop.iterations += 1
            loop.metrics["cgroup_moves"] = moves
            loop.metrics["cgroup_move_failures"] = failed
            if fds:
                with contextlib.suppress(OSError):
                    os.pwrite(fds[0], me, 0)  # home again, so the siblings can go
        finally:
            for fd in fds:
                os.close(fd)
            _remove_siblings(cgfs, names, loop)


def _spin_until_stopped(loop: WorkLoop, cycle_s: float) -> None:
    while loop.running:
        loop.spin_for(cycle_s)
        loop.iterations += 1


@dataclass(frozen=True, slots=True)
class CgroupAttachStorm(WorkType):
    """Fork children that exit at once and migrate each to a sibling cgroup as it exits."""

    def run(self, loop: WorkLoop) -> None:
        pid = os.getpid()
        rng = random.Random(pid)
        cgfs = cgroup_fs()
        names: list[str] = []
        fd = -1
        if cgfs is None:
            loop.note("no cgroup2 hierarchy mounted: CgroupAttachStorm only forked children")
        else:
            home = task_cgroup("self")
            names = sibling_names(home, f"storm{pid}", 1)
            try:
                _make_siblings(cgfs, home, names)
                fd = _open_procs(cgfs, names[0])
            except fs.SysIoError as err:
                loop.note(f"CgroupAttachStorm could not create its sibling cgroup ({err}): it "
                          "only forked children")
        # Random child spins drawn up front: no allocation between fork and move.
        spins = [rng.randrange(ATTACH_STORM_CHILD_SPIN_MAX + 1) for _ in range(256)]
        marker = f"/{names[0]}" if names else ""
        accepted = gone = sampled = landed = 0
        try:
            while loop.running:
                spin = spins[loop.iterations & 0xFF]
                child = os.fork()
                if child == 0:
                    spin_batch(spin, 1)
                    os._exit(0)
                if fd >= 0:
                    try:
                        os.pwrite(fd, str(child).encode(), 0)
                        accepted += 1
                    except OSError as err:
                        if err.errno != errno.ESRCH:
                            raise
                        gone += 1
                    if loop.iterations % ATTACH_STORM_SAMPLE_EVERY == 0:
                        # Not reaped yet, so /proc/<child>/cgroup says where it ended.
                        landed_in = _cgroup_of(child)
                        if landed_in is not None:
                            sampled += 1
                            landed += f"/{landed_in}".endswith(marker)
                os.waitpid(child, 0)
                loop.spin()
                loop.iterations += 1
        finally:
            if fd >= 0:
                os.close(fd)
            if cgfs is not None and names:
                _remove_siblings(cgfs, names, loop)
        loop.metrics["attach_writes"] = accepted
        loop.metrics["attach_esrch"] = gone
        loop.metrics["attach_sampled"] = sampled
        loop.metrics["attach_landed"] = landed
