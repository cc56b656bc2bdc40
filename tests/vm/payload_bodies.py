"""Payload bodies run by test_payloads.py: stress-ng and fio in a guest, seen by the kernel.

Not a test module (no test_ prefix).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace

from ktstr import (
    AssertResult,
    CpusetSpec,
    Ctx,
    HoldSpec,
    MetricCheck,
    Op,
    Payload,
    Step,
    execute_steps,
    ktstr_test,
)
from ktstr.payloads import FIO, STRESS_NG
from ktstr.system.proc import task_cpu
from tests.vm.probes import Sampler, cgroup_pids

BOGO = "metrics.0.bogo-ops"


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def stress_ng_in_a_cpuset_cgroup(ctx: Ctx) -> AssertResult:
    """stress-ng placed in cgroup `sng` (cpuset {1}) before it execs; then a min check that
    holds and one that cannot."""
    caps: dict[str, list[int]] = {}
    cpus_seen: set[int] = set()
    pids_seen: set[int] = set()
    sng = ctx.cgroups.path("sng")

    def sample() -> None:
        for pid in cgroup_pids(sng):
            pids_seen.add(pid)
            with contextlib.suppress(OSError):  # gone between listing and reading
                cpus_seen.add(task_cpu(pid))
    with Sampler(sample, 0.2):
        result = execute_steps(ctx, [
            Step(ops=(Op.add_cgroup("sng"), Op.set_cpuset("sng", CpusetSpec.exact({1})),
                      Op.run_payload(STRESS_NG, ["--cpu", "1", "--timeout", "2"], cgroup="sng"),
                      Op.capture_cgroup_procs("at_start", "sng")), hold=HoldSpec.fixed(1.0)),
            Step(ops=(Op.capture_cgroup_procs("running", "sng"), Op.wait_payload("stress-ng")),
                 hold=HoldSpec.fixed(0.1)),
        ], captures=caps)
    (run,) = result.payloads
    # Placed before exec: the pid is in the cgroup the moment the spawn returns.
    assert run.pid in caps["at_start"], (run.pid, caps)
    assert run.pid in caps["running"], caps
    assert len(pids_seen) >= 2, pids_seen  # stress-ng and the cpu worker it forked
    assert cpus_seen == {1}, f"stress-ng ran on cpus {sorted(cpus_seen)}, cpuset was {{1}}"
    assert run.exit_code == 0 and run.cgroup == "sng", run
    assert run.metrics[BOGO] > 0, run.metrics

    holds = replace(STRESS_NG, checks=(*STRESS_NG.checks, MetricCheck.min(BOGO, 1)))
    ok = ctx.payload(holds, ["--cpu", "1", "--timeout", "1"])
    assert ok.passed and ok.metrics[BOGO] >= 1, (ok.details, ok.metrics)
    cannot = replace(STRESS_NG, name="stress-ng-1e15", checks=(MetricCheck.min(BOGO, 1e15),))
    bad = ctx.payload(cannot, ["--cpu", "1", "--timeout", "1"])
    assert not bad.passed, bad.metrics
    assert f"metric '{BOGO}' = " in bad.details[0] and "below minimum 1e+15" in bad.details[0], \
        bad.details
    result.merge(ok.result)
    return result


LONG_STRESS = replace(STRESS_NG, name="stress-ng-long",
                      default_args=(*STRESS_NG.default_args, "--cpu", "1", "--timeout", "60"))


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=3)
def fio_metrics_and_a_killed_payload(ctx: Ctx) -> AssertResult:
    fio = ctx.payload(FIO, ["--name=rand", "--filename=/tmp/ktstr-fio.dat", "--size=4M",
                            "--rw=randrw", "--bs=4k", "--runtime=1", "--time_based"])
    assert fio.passed, [*fio.details, fio.stderr_tail]
    for name in ("jobs.0.read.iops", "jobs.0.write.iops", "jobs.0.read.bw",
                 "jobs.0.read.clat_ns.percentile.99.000000"):
        assert name in fio.metrics, sorted(fio.metrics)[:40]
    assert fio.metrics["jobs.0.read.iops"] > 0 and fio.metrics["jobs.0.write.iops"] > 0

    result = execute_steps(ctx, [
        Step.with_payload(LONG_STRESS, HoldSpec.fixed(1.5)),
        Step.with_op(Op.kill_payload("stress-ng-long"), HoldSpec.fixed(0.1)),
    ])
    (killed,) = result.payloads
    assert killed.killed and killed.signal == 9 and killed.exit_code is None, killed
    assert killed.wall_s < 30, killed.wall_s  # not its 60 s timeout
    try:
        os.kill(killed.pid, 0)
        raise AssertionError(f"stress-ng pid {killed.pid} still exists after kill_payload")
    except ProcessLookupError:
        pass
    # Op payload checks are recorded, not judged: its exit_code_eq(0) failed yet the run passes.
    assert killed.details and not killed.judged and result.passed, killed.details
    result.merge(fio.result)
    return result


FAILS = Payload.binary("false", "false", checks=[MetricCheck.exit_code_eq(0)])


@ktstr_test(llcs=1, cores=2, threads=1, duration_s=1, payload=FAILS)
def primary_payload_with_a_failing_exit_code(ctx: Ctx) -> None:
    """The body runs nothing: the primary payload is the test's workload, and fails it."""
