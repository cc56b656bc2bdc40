"""Running payloads for real (sh, sleep, cat): exit, metrics, kill, cgroup, step-op rules."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ktstr import (
    Ctx,
    HoldSpec,
    MetricCheck,
    Op,
    OutputFormat,
    Payload,
    Step,
    execute_steps,
)
from ktstr.checks import Assert
from ktstr.errors import ConfigError
from ktstr.payloads import LivePayloads, start
from ktstr.scenario import TestTopology
from ktstr.scenario.validate import validate_steps
from ktstr.system.cgroup import cgroup2_mount
from ktstr.topology import Topology

SH = Payload.binary("sh", "/bin/sh", default_args=["-c"], output=OutputFormat.JSON,
                    checks=[MetricCheck.exit_code_eq(0), MetricCheck.min("n", 2)])
SLEEP = Payload.binary("sleep", "sleep", default_args=["30"], checks=[MetricCheck.exit_code_eq(0)])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_exit_code_output_and_metrics_of_a_real_run() -> None:
    r = start(SH, ['echo "banner"; echo \'{"n": 1, "s": "x"}\'; echo oops >&2; exit 3']).wait()
    assert r.argv[1:] == ["-c", r.argv[2]] and r.argv[0] == "/bin/sh"
    assert (r.exit_code, r.signal, r.killed, r.stream) == (3, None, False, "stdout")
    assert r.metrics == {"n": 1.0} and r.stderr_tail == "oops\n"
    assert r.details == ["payload sh: exited with code 3, expected 0; stderr: oops"]
    ok = start(SH, ['echo \'{"n": 5}\'']).wait()
    assert ok.passed and ok.exit_code == 0 and ok.wall_s > 0


def test_kill_ends_the_whole_process_group_and_records_the_signal() -> None:
    run = start(SH, ["sleep 30 & echo $! >&2; wait"])
    deadline = time.monotonic() + 5
    while not run.child._err.data and time.monotonic() < deadline:
        time.sleep(0.01)
    grandchild = int(run.child._err.data.decode().split()[0])
    assert os.getpgid(grandchild) == run.pid  # its own group, led by the payload
    r = run.kill()
    assert (r.signal, r.exit_code, r.killed) == (9, None, True)
    assert r.details == [f"payload sh: killed by SIGKILL, expected 0; stderr: {grandchild}"]
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _gone(grandchild), "the payload's own child survived kill()"


def test_wait_with_a_timeout_kills_a_payload_that_runs_on() -> None:
    r = start(SLEEP).wait(timeout=0.3)
    assert r.killed and r.signal == 9 and r.wall_s < 10


def test_live_payload_rules_duplicate_unknown_and_ambiguous() -> None:
    live = LivePayloads()
    a, b = start(SLEEP, cgroup="a", judged=False), start(SLEEP, cgroup="b", judged=False)
    try:
        live.add(a)
        live.add(b)
        with pytest.raises(ConfigError, match="'sleep' is already running in cgroup a"):
            live.check_free("sleep", "a")
        with pytest.raises(ConfigError, match=r"'sleep' is ambiguous, it runs in cgroup a, "
                           r"cgroup b; hint: name the cgroup"):
            live.take("Op.wait_payload", "sleep", None)
        with pytest.raises(ConfigError, match="no running payload named 'fio'"):
            live.take("Op.kill_payload", "fio", None)
        assert live.take("Op.kill_payload", "sleep", "b") is b
        assert live.take("Op.kill_payload", "sleep", None) is a
    finally:
        a.kill()
        b.kill()


@pytest.fixture
def ctx() -> Ctx:
    return Ctx(cgroups=None,  # type: ignore[arg-type]  # payload ops without a cgroup need none
               topo=TestTopology.from_topology(Topology(1, 1, 2, 1)), checks=Assert(),
               duration=1.0, settle=0.0)


def test_step_list_payload_rules_fail_before_anything_runs(ctx: Ctx) -> None:
    cases: list[tuple[list[Step], str]] = [
        ([Step.with_op(Op.wait_payload("sleep"))],
         "step 1: Op.wait_payload: no running payload named 'sleep'"),
        ([Step.with_payload(SLEEP), Step(ops=(Op.run_payload(SLEEP),))],
         "step 2: Op.run_payload: payload 'sleep' is already running in the runner's cgroup"),
        ([Step(ops=(Op.run_payload(SLEEP), Op.kill_payload("sleep"),
                    Op.kill_payload("sleep")))],
         "step 1: Op.kill_payload: no running payload named 'sleep'"),
        ([Step(ops=(Op.run_payload(SLEEP),), hold=HoldSpec.loop_at(0.1))],
         "already running"),
    ]
    missing = Payload.binary("nope", "/nonexistent/bench")
    cases.append(([Step.with_payload(missing)], "step 1: payload nope: binary /nonexistent"))
    for steps, message in cases:
        with pytest.raises(ConfigError, match=message):
            validate_steps(ctx, steps)
    moved = [Step(ops=(Op.add_cgroup("a"), Op.add_cgroup("b"), Op.run_payload(SLEEP, cgroup="a"),
                       Op.move_all_tasks("a", "b")))]
    validate_steps(ctx, [*moved, Step.with_op(Op.kill_payload("sleep", "b"))])
    with pytest.raises(ConfigError, match="no running payload named 'sleep' in cgroup a"):
        validate_steps(ctx, [*moved, Step.with_op(Op.kill_payload("sleep", "a"))])
    validate_steps(ctx, [Step.with_payload(SLEEP),
                         Step(ops=(Op.kill_payload("sleep"), Op.run_payload(SLEEP)))])
    with pytest.raises(ConfigError, match="is not a Payload"):
        Op.run_payload("sleep")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="single string"):
        Op.run_payload(SLEEP, "30")


def test_ops_run_kill_and_end_of_scenario_record_unjudged_results(ctx: Ctx) -> None:
    short = Payload.binary("quick", "/bin/sh", default_args=["-c", "echo '{\"v\": 4}'"],
                           output=OutputFormat.JSON)
    result = execute_steps(ctx, [
        Step(ops=(Op.run_payload(SLEEP), Op.run_payload(short)), hold=HoldSpec.fixed(0.2)),
        Step(ops=(Op.kill_payload("sleep"), Op.wait_payload("quick"),
                  Op.run_payload(SLEEP, ["31"])), hold=HoldSpec.fixed(0.1)),
    ])
    killed, quick, leftover = result.payloads
    assert killed.killed and killed.signal == 9 and killed.argv[1:] == ["30"]
    assert not killed.judged and killed.details and result.passed  # recorded, not judged
    assert quick.exit_code == 0 and quick.metrics == {"v": 4.0}
    assert leftover.killed and leftover.argv[1:] == ["30", "31"]  # killed at the end
    assert all(_gone(p.pid) for p in result.payloads)
    assert ctx.payload_runs == result.payloads


def test_ctx_payload_runs_blocking_and_is_recorded(ctx: Ctx) -> None:
    r = ctx.payload(SH, ['echo \'{"n": 1}\''])
    assert ctx.payload_runs == [r] and r.judged
    assert r.details == ["payload sh: metric 'n' = 1 below minimum 2"]
    assert not r.result.passed and r.result.details == r.details
    with pytest.raises(ConfigError, match="single string"):
        ctx.payload(SH, "echo")


@pytest.mark.skipif(os.geteuid() != 0 or cgroup2_mount() is None,
                    reason="needs root and a cgroup2 mount")
def test_payload_is_in_its_cgroup_from_its_first_instruction(tmp_path: Path) -> None:
    mount = cgroup2_mount()
    assert mount is not None
    cg = mount / f"ktstr-payload-test-{os.getpid()}"
    cg.mkdir()
    try:
        # cat reads its own cgroup as it starts: the exec'd program is already there.
        cat = Payload.binary("cat", "cat", default_args=["/proc/self/cgroup"])
        r = start(cat, cgroup=cg.name, cgroup_dir=cg).wait()
        assert r.exit_code == 0, r.stderr_tail
        assert r.stdout_tail.strip().endswith(f"/{cg.name}"), r.stdout_tail
        assert r.cgroup == cg.name
    finally:
        cg.rmdir()


def test_a_missing_cgroup_fails_before_anything_forks(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"no cgroup\.procs there"):
        start(SLEEP, cgroup="nope", cgroup_dir=tmp_path / "nope")


