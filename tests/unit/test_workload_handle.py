"""Real forked workers on this host: placement, reports, stopping and reaping.

Each test runs its workers for a few tenths of a second. Cgroup tests use a
scratch cgroup under the host's cgroup2 mount, removed afterwards, and are
skipped where there is no writable cgroup2 hierarchy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ktstr import work
from ktstr.errors import ConfigError, SystemError_
from ktstr.system import proc
from ktstr.system.libc import set_child_subreaper
from ktstr.work import CloneMode
from ktstr.workload import (
    AffinityIntent,
    WorkerCtx,
    WorkerReport,
    WorkloadConfig,
    WorkloadHandle,
)


def _cgroup2_mount() -> Path | None:
    with open("/proc/mounts") as f:
        for line in f:
            _, mnt, fstype, *_ = line.split()
            if fstype == "cgroup2":
                return Path(mnt)
    return None


@pytest.fixture
def scratch_cgroup() -> Iterator[tuple[Path, str]]:
    """(cgroup dir, its path relative to the cgroup2 root)."""
    root = _cgroup2_mount()
    if root is None or os.geteuid() != 0:
        pytest.skip("needs root and a cgroup2 mount")
    rel = f"ktstr-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path = root / rel
    path.mkdir()
    try:
        yield path, rel
    finally:
        path.rmdir()


def _gone(pid: int) -> bool:
    """True when `pid` is neither our child nor a live process."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    else:
        return False
    return not Path(f"/proc/{pid}").exists()


def _until_each_ran(pids: list[int], cpu_s: float, timeout: float = 5.0) -> None:
    """Wait until every worker had `cpu_s` of CPU time: a fixed sleep is not enough on a
    loaded host, where a worker may not run at all for a tenth of a second."""
    deadline = time.monotonic() + timeout
    while any(proc.task_schedstat(p)[0] < cpu_s * 1e9 for p in pids):
        assert time.monotonic() < deadline, f"workers {pids} did not run {cpu_s}s each"
        time.sleep(0.01)


def _run(cfg: WorkloadConfig, secs: float, **spawn: object) -> list[WorkerReport]:
    with WorkloadHandle.spawn(cfg, start=True, **spawn) as h:  # type: ignore[arg-type]
        time.sleep(secs)  # the run itself: workers work meanwhile
        return h.stop_and_collect()


def test_workers_join_cgroup_before_they_start(scratch_cgroup: tuple[Path, str]) -> None:
    cg, rel = scratch_cgroup
    with WorkloadHandle.spawn(WorkloadConfig(workers=2), cgroup_dir=cg, group_idx=3) as h:
        procs = {int(p) for p in (cg / "cgroup.procs").read_text().split()}
        assert set(h.pids) == procs  # placed while waiting at the start gate
        reports = h.stop_and_collect()  # never started
    assert [r.tid for r in reports] == h.pids
    for r in reports:
        assert r.work_units == 0 and r.error == ""
        assert r.cgroup == rel
        assert r.group_idx == 3


def test_started_workers_report_work_and_cpu_time(scratch_cgroup: tuple[Path, str]) -> None:
    cg, rel = scratch_cgroup
    reports = _run(WorkloadConfig(workers=2, work=work.SpinWait()), 0.3, cgroup_dir=cg)
    assert len(reports) == 2
    for r in reports:
        assert r.error == ""
        assert r.work_units > 0 and r.iterations == r.work_units
        assert r.cpu_time_ns > 0
        assert 0.25e9 <= r.wall_time_ns <= 2e9
        assert r.cpu_time_ns <= r.wall_time_ns * 1.05
        assert r.cpus_used and r.max_gap_cpu in r.cpus_used
        assert 0 < r.max_gap_ms < 300 and 0 <= r.max_gap_at_ms <= r.wall_time_ns / 1e6
        assert r.work_type == "SpinWait" and r.cgroup == rel


def test_affinity_cpu0_keeps_every_checkpoint_on_cpu0() -> None:
    for r in _run(WorkloadConfig(workers=2, work=work.Mixed(), affinity=frozenset({0})), 0.2):
        assert r.error == ""
        assert r.cpus_used == frozenset({0})
        assert r.max_gap_cpu == 0


def test_stop_and_collect_reaps_every_worker() -> None:
    with WorkloadHandle.spawn(WorkloadConfig(workers=3, work=work.YieldHeavy()),
                              start=True) as h:
        pids = h.pids
        _until_each_ran(pids, 0.02)
        reports = h.stop_and_collect()
        assert all(_gone(p) for p in pids)
        assert h.stop_and_collect() == reports  # idempotent
    assert len(reports) == 3 and all(r.work_units > 0 for r in reports)


def test_caller_exception_inside_with_kills_every_worker() -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="scenario broke"), \
            WorkloadHandle.spawn(WorkloadConfig(workers=2), start=True) as h:
        pids = h.pids
        raise RuntimeError("scenario broke")
    assert len(pids) == 2 and all(_gone(p) for p in pids)


def _boom(wctx: WorkerCtx) -> WorkerReport:
    raise ValueError(f"boom in worker {wctx.index}")


def test_custom_fn_that_raises_returns_report_with_error() -> None:
    reports = _run(WorkloadConfig(workers=2, work=work.Custom("boom", _boom)), 0.05)
    assert [r.error.split(" (at ")[0] for r in reports] == [
        "Custom work 'boom' raised ValueError: boom in worker 0",
        "Custom work 'boom' raised ValueError: boom in worker 1",
    ]
    assert all(r.work_type == "boom" and r.tid > 0 for r in reports)


def _ignore_stop(wctx: WorkerCtx) -> WorkerReport:
    while True:
        pass


def test_worker_ignoring_stop_is_killed_after_grace() -> None:
    with WorkloadHandle.spawn(WorkloadConfig(workers=1, work=work.Custom("deaf", _ignore_stop)),
                              start=True) as h:
        t0 = time.monotonic()
        (report,) = h.stop_and_collect(grace=0.2)
        assert time.monotonic() - t0 < 1.5
    assert "did not stop within 0.2s" in report.error and "SIGKILL" in report.error
    assert _gone(h.pids[0])


def _spawn_grandchild(wctx: WorkerCtx) -> WorkerReport:
    child = subprocess.Popen(["sleep", "30"])
    wctx.stop.wait(10.0)
    return WorkerReport(work_units=1, iterations=child.pid)  # pid smuggled out for the test


def test_worker_process_group_dies_with_it() -> None:
    set_child_subreaper(True)  # the orphaned grandchild comes to us, so we can reap it
    try:
        (r,) = _run(WorkloadConfig(workers=1, work=work.Custom("parent", _spawn_grandchild)),
                    0.1)
        grandchild = r.iterations
        assert r.error == "" and grandchild > 0
        _, status = os.waitpid(grandchild, 0)
    finally:
        set_child_subreaper(False)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL


def _describe_ctx(wctx: WorkerCtx) -> WorkerReport:
    assert isinstance(wctx.cfg, Path)
    (wctx.cfg / f"{wctx.index}.json").write_text(json.dumps({
        "pid": os.getpid(), "siblings": list(wctx.sibling_pids), "cpus": sorted(wctx.cpus),
        "cgroup_dir": str(wctx.cgroup_dir), "stop_set": wctx.stop.is_set()}))
    wctx.stop.wait()
    return WorkerReport(work_units=1)


def test_custom_sees_ctx_and_framework_fills_defaults(tmp_path: Path) -> None:
    reports = _run(WorkloadConfig(workers=3, work=work.Custom("ctx", _describe_ctx,
                                                              cfg=tmp_path)), 0.2)
    pids = [r.tid for r in reports]
    for i, r in enumerate(reports):
        seen = json.loads((tmp_path / f"{i}.json").read_text())
        assert seen["pid"] == r.tid
        assert sorted(seen["siblings"]) == sorted(p for p in pids if p != r.tid)
        assert set(seen["cpus"]) == os.sched_getaffinity(0)
        assert seen["cgroup_dir"] == "None" and seen["stop_set"] is False
        assert r.work_units == 1 and r.work_type == "ctx" and r.error == ""
        assert 0.15e9 <= r.wall_time_ns <= 2e9  # filled by the framework


def test_pcomm_and_nice_are_applied_before_start() -> None:
    cfg = WorkloadConfig(workers=1, nice=7, pcomm="ktstr_wk")
    with WorkloadHandle.spawn(cfg) as h:
        pid = h.pids[0]
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "ktstr_wk"
        assert os.getpriority(os.PRIO_PROCESS, pid) == 7
        leader = h.leader_pids[0]  # pcomm: the worker is a thread of one named leader
        assert os.getpgid(pid) == leader and Path(f"/proc/{leader}/comm").read_text() \
            == "ktstr_wk\n"


def test_sleep_phases_are_not_gaps() -> None:
    seq = work.Sequence(work.Spin(0.03), work.Sleep(0.2))
    for r in _run(WorkloadConfig(workers=1, work=seq), 0.6):
        assert r.error == ""
        assert r.iterations >= 2
        assert r.max_gap_ms < 150  # the 200 ms sleeps would show here if counted
        assert r.cpu_time_ns < 0.5 * r.wall_time_ns
        assert r.wake_latency_us.count >= 2 and r.voluntary_csw >= 2


def test_missing_cgroup_fails_spawn_with_path_and_leaves_no_worker(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_cgroup"
    with pytest.raises(SystemError_, match=r"no_such_cgroup/cgroup\.procs") as info:
        WorkloadHandle.spawn(WorkloadConfig(workers=2), cgroup_dir=missing)
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "before it started work" in note
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # every worker was reaped


def test_affinity_outside_online_cpus_fails_spawn() -> None:
    with pytest.raises(ConfigError, match=r"cannot pin worker \d+ to cpus 4095"):
        WorkloadHandle.spawn(WorkloadConfig(workers=1, affinity=frozenset({4095})))


def test_affinity_intent_is_refused_at_spawn_before_any_fork() -> None:
    with pytest.raises(ConfigError, match=r"llc_aligned\(\) needs scenario context"):
        WorkloadHandle.spawn(WorkloadConfig(workers=2, affinity=AffinityIntent.llc_aligned()))
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # nothing was forked


@pytest.mark.parametrize("threads", [False, True])
def test_per_worker_masks_pin_each_worker_to_its_own(threads: bool) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    masks = (frozenset({cpus[0]}), frozenset({cpus[-1]}), frozenset(cpus))
    seen: dict[int, frozenset[int]] = {}

    def report_mask(wctx: WorkerCtx) -> WorkerReport:
        kernel = proc.task_cpus_allowed(threading.get_native_id())
        return WorkerReport(work_units=1, metrics={"ok": float(kernel == wctx.cpus)},
                            notes=[",".join(map(str, sorted(kernel)))])

    cfg = WorkloadConfig(workers=3, work=work.Custom("mask", report_mask), affinity=masks,
                         clone_mode=CloneMode.THREAD if threads else CloneMode.FORK)
    with WorkloadHandle.spawn(cfg, start=True) as h:
        reports = h.stop_and_collect()
    for i, r in enumerate(reports):
        assert r.error == "" and r.metrics["ok"] == 1.0, r
        seen[i] = frozenset(int(c) for c in r.notes[0].split(","))
    assert seen == dict(enumerate(masks))


def test_kill_is_idempotent_and_marks_reports() -> None:
    h = WorkloadHandle.spawn(WorkloadConfig(workers=2), start=True)
    h.kill()
    h.kill()
    assert all(_gone(p) for p in h.pids)
    assert [r.error for r in h.stop_and_collect()] == [
        "killed before its report was collected"] * 2


class _ExitingPolicy:
    """A policy whose apply() ends the worker before it can say ready."""

    def apply(self, pid: int) -> None:
        os._exit(5)


class _RefusedPolicy:
    def apply(self, pid: int) -> None:
        raise ConfigError("SCHED_FIFO refused; hint: test only")


def test_worker_dying_before_ready_fails_spawn_with_its_status() -> None:
    with pytest.raises(SystemError_, match=r"exited \(exit status 5\) before saying ready"):
        WorkloadHandle.spawn(WorkloadConfig(workers=1, policy=_ExitingPolicy()))


def test_setup_error_in_worker_is_reraised_in_parent() -> None:
    with pytest.raises(ConfigError, match="SCHED_FIFO refused") as info:
        WorkloadHandle.spawn(WorkloadConfig(workers=2, policy=_RefusedPolicy()))
    assert "before it started work" in " ".join(info.value.__notes__)
