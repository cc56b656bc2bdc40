"""SchedPolicy validation and application, CloneMode.THREAD and the pcomm leader, on this host.

The policy tests apply policies to real worker processes and threads and read
the kernel's answer back from /proc/<pid>/task/<tid>/sched (`policy`) and
sched_getattr(2); real-time and deadline need root (skipped otherwise).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from ktstr import work
from ktstr.errors import ConfigError
from ktstr.system import proc
from ktstr.work.policy import (
    SCHED_BATCH,
    SCHED_DEADLINE,
    SCHED_EXT,
    SCHED_FIFO,
    SCHED_IDLE,
    SCHED_NORMAL,
    SCHED_RR,
    CloneMode,
    SchedPolicy,
    sched_getattr,
)
from ktstr.workload import WorkerCtx, WorkerReport, WorkloadConfig, WorkloadHandle

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="real-time policies need root")


def _policy_of(leader: int, tid: int) -> int:
    return int(proc.task_sched(tid, root=Path(f"/proc/{leader}/task"))["policy"])


def _run(cfg: WorkloadConfig, secs: float) -> list[WorkerReport]:
    with WorkloadHandle.spawn(cfg, start=True) as h:
        time.sleep(secs)  # the workers run meanwhile
        return h.stop_and_collect()


# -- SchedPolicy: construction --------------------------------------------------------


def test_constructors_give_the_kernel_policy_numbers() -> None:
    assert [p.policy for p in (SchedPolicy.normal(), SchedPolicy.batch(), SchedPolicy.idle(),
                               SchedPolicy.fifo(1), SchedPolicy.round_robin(99),
                               SchedPolicy.deadline(0.001, 0.002, 0.003), SchedPolicy.ext())] \
        == [SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE, SCHED_FIFO, SCHED_RR, SCHED_DEADLINE, 7]
    assert SchedPolicy.ext().policy == SCHED_EXT
    assert SchedPolicy() == SchedPolicy.normal()


@pytest.mark.parametrize("bad", [0, 100, -1, True, 1.5, "10"])
@pytest.mark.parametrize("ctor", [SchedPolicy.fifo, SchedPolicy.round_robin])
def test_rt_priority_outside_1_99_is_rejected(ctor: object, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"priority .* outside 1\.\.99"):
        ctor(bad)  # type: ignore[operator]


def test_deadline_order_is_checked_before_any_syscall() -> None:
    with pytest.raises(ConfigError, match="runtime 10000000 ns <= deadline 5000000 ns"):
        SchedPolicy.deadline(0.01, 0.005, 0.1)
    with pytest.raises(ConfigError, match="<= period 20000000 ns does not hold"):
        SchedPolicy.deadline(0.01, 0.05, 0.02)
    with pytest.raises(ConfigError, match="below the kernel's minimum of 1024 ns"):
        SchedPolicy.deadline(1e-7, 0.01, 0.1)


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), "1ms", None, True])
def test_deadline_durations_must_be_positive(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"SchedPolicy\.deadline runtime = .* is not a "
                       r"(positive )?duration"):
        SchedPolicy.deadline(bad, 0.1, 0.1)  # type: ignore[arg-type]


def test_deadline_takes_seconds_or_timedelta() -> None:
    a = SchedPolicy.deadline(timedelta(milliseconds=2), 0.005, timedelta(milliseconds=10))
    assert (a.runtime_ns, a.deadline_ns, a.period_ns) == (2_000_000, 5_000_000, 10_000_000)
    assert str(a) == "deadline(runtime=2ms, deadline=5ms, period=10ms)"
    assert str(SchedPolicy.fifo(7)) == "fifo(7)" and str(SchedPolicy.idle()) == "idle"


def test_parameters_of_other_policies_are_refused() -> None:
    with pytest.raises(ConfigError, match="takes no priority"):
        SchedPolicy(SCHED_BATCH, priority=3)
    with pytest.raises(ConfigError, match="takes no runtime"):
        SchedPolicy(SCHED_FIFO, priority=3, runtime_ns=5)
    with pytest.raises(ConfigError, match="is not one of"):
        SchedPolicy(4)


def test_attr_keeps_nice_for_fair_policies_only() -> None:
    assert SchedPolicy.batch().attr(nice=5).sched_nice == 5
    rt = SchedPolicy.fifo(9).attr(nice=5)
    assert (rt.sched_nice, rt.sched_priority, rt.size) == (0, 9, 48)


def test_policy_is_accepted_by_workload_config() -> None:
    cfg = WorkloadConfig(workers=1, policy=SchedPolicy.batch())
    assert cfg.policy == SchedPolicy.batch()


# -- SchedPolicy: the kernel's answer ---------------------------------------------------


@root_only
@pytest.mark.parametrize("pol", [SchedPolicy.batch(), SchedPolicy.idle(), SchedPolicy.fifo(3),
                                 SchedPolicy.round_robin(4), SchedPolicy.normal()],
                         ids=str)
def test_policy_applied_in_worker_before_ready(pol: SchedPolicy) -> None:
    cfg = WorkloadConfig(workers=2, work=work.Bursty(0.005, 0.02), policy=pol, nice=3
                         if pol.policy in (SCHED_NORMAL, SCHED_BATCH) else None)
    with WorkloadHandle.spawn(cfg) as h:  # not started: set before ready
        for pid in h.pids:
            attr = sched_getattr(pid)
            assert _policy_of(pid, pid) == pol.policy == attr.sched_policy
            assert attr.sched_priority == pol.priority
            if cfg.nice is not None:
                assert attr.sched_nice == 3  # sched_setattr did not reset it


@root_only
def test_deadline_policy_carries_its_parameters() -> None:
    pol = SchedPolicy.deadline(0.002, 0.02, 0.05)
    with WorkloadHandle.spawn(WorkloadConfig(workers=1, work=work.Bursty(0.001, 0.01),
                                             policy=pol)) as h:
        attr = sched_getattr(h.pids[0])
        assert (attr.sched_policy, attr.sched_runtime, attr.sched_deadline,
                attr.sched_period) == (SCHED_DEADLINE, 2_000_000, 20_000_000, 50_000_000)
        sched = proc.task_sched(h.pids[0])
        assert sched["policy"] == SCHED_DEADLINE and sched["dl.runtime"] > 0


@root_only
def test_deadline_with_narrow_affinity_fails_spawn_with_the_reason() -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to narrow the affinity")
    cfg = WorkloadConfig(workers=1, affinity=frozenset({min(os.sched_getaffinity(0))}),
                         policy=SchedPolicy.deadline(0.001, 0.01, 0.1))
    with pytest.raises(ConfigError, match="root domain: drop the worker's affinity"):
        WorkloadHandle.spawn(cfg)


@pytest.mark.skipif(Path("/sys/kernel/sched_ext").exists(),
                    reason="this kernel has sched_ext: SCHED_EXT is accepted")
def test_ext_without_sched_class_ext_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="CONFIG_SCHED_CLASS_EXT"):
        WorkloadHandle.spawn(WorkloadConfig(workers=1, policy=SchedPolicy.ext()))


# -- CloneMode and pcomm ---------------------------------------------------------------


def test_clone_mode_is_validated_and_pcomm_implies_threads() -> None:
    assert WorkloadConfig().clone_mode is CloneMode.FORK and not WorkloadConfig().threaded
    assert WorkloadConfig(clone_mode=CloneMode.THREAD).threaded
    assert WorkloadConfig(pcomm="app").threaded
    with pytest.raises(ConfigError, match="is not a CloneMode"):
        WorkloadConfig(clone_mode="thread")  # type: ignore[arg-type]


def test_thread_mode_workers_are_threads_of_one_leader_each_with_its_report() -> None:
    cfg = WorkloadConfig(workers=3, work=work.Bursty(0.01, 0.01), clone_mode=CloneMode.THREAD)
    with WorkloadHandle.spawn(cfg, start=True) as h:
        (leader,) = h.leader_pids
        tids = h.pids
        assert len(set(tids)) == 3 and leader not in tids
        assert set(tids) <= {int(t) for t in os.listdir(f"/proc/{leader}/task")}
        time.sleep(0.6)  # the threads run meanwhile
        reports = h.stop_and_collect()
    assert [r.tid for r in reports] == tids
    for r in reports:
        assert r.error == "" and r.work_units > 0 and r.cpu_time_ns > 0, r
        assert r.voluntary_csw > 0  # each thread's own sleeps (RUSAGE_THREAD)
    # Per-thread counters: the three threads' CPU times are not one process total.
    assert len({r.cpu_time_ns for r in reports}) == 3
    assert not Path(f"/proc/{leader}").exists() or Path(f"/proc/{leader}/stat").read_text() \
        .split()[2] == "Z"


def test_pcomm_names_the_leader_that_hosts_the_threads() -> None:
    cfg = WorkloadConfig(workers=2, pcomm="ktstr_app")
    with WorkloadHandle.spawn(cfg) as h:
        (leader,) = h.leader_pids
        assert Path(f"/proc/{leader}/comm").read_text() == "ktstr_app\n"
        for tid in h.pids:
            assert Path(f"/proc/{leader}/task/{tid}").is_dir()
            assert os.getpgid(tid) == leader


def test_thread_mode_affinity_and_policy_are_per_thread() -> None:
    cpu = min(os.sched_getaffinity(0))
    cfg = WorkloadConfig(workers=2, work=work.Bursty(0.005, 0.005), pcomm="pinned",
                         affinity=frozenset({cpu}), policy=SchedPolicy.batch())
    with WorkloadHandle.spawn(cfg, start=True) as h:
        (leader,) = h.leader_pids
        for tid in h.pids:
            assert os.sched_getaffinity(tid) == {cpu}
            assert _policy_of(leader, tid) == SCHED_BATCH
        assert _policy_of(leader, leader) == SCHED_NORMAL  # the leader keeps its own
        time.sleep(0.3)  # the threads run meanwhile
        reports = h.stop_and_collect()
    assert all(r.cpus_used == {cpu} and r.work_units > 0 for r in reports), reports


def test_thread_setup_error_fails_spawn_and_leaves_nothing() -> None:
    cfg = WorkloadConfig(workers=2, clone_mode=CloneMode.THREAD, affinity=frozenset({4095}))
    with pytest.raises(ConfigError, match="cannot pin worker"):
        WorkloadHandle.spawn(cfg)


def test_thread_ignoring_stop_is_killed_with_its_leader() -> None:
    def stubborn(wctx: WorkerCtx) -> WorkerReport:
        while True:
            time.sleep(0.01)  # ignores wctx.stop on purpose

    cfg = WorkloadConfig(workers=2, clone_mode=CloneMode.THREAD,
                         work=work.Custom("stubborn", stubborn))
    with WorkloadHandle.spawn(cfg, start=True) as h:
        (leader,) = h.leader_pids
        reports = h.stop_and_collect(grace=0.3)
    assert all("did not stop within 0.3s" in r.error for r in reports), reports
    assert not Path(f"/proc/{leader}").exists()


def test_custom_threads_see_each_other_as_siblings() -> None:
    def who(wctx: WorkerCtx) -> WorkerReport:
        return WorkerReport(work_units=1, metrics={"siblings": float(len(wctx.sibling_pids))})

    reports = _run(WorkloadConfig(workers=3, pcomm="sib", work=work.Custom("who", who)), 0.1)
    assert [r.metrics["siblings"] for r in reports] == [2.0, 2.0, 2.0]
