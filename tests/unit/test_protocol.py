"""The wire's messages survive JSON both ways, and carry only what the host decided."""

import json

from ktstr.protocol import (
    Outcome,
    RunOverrides,
    SchedEnd,
    SchedulerOrder,
    SchedulerRun,
    ShellRequest,
    TestLocation,
    TestRequest,
    decode,
    encode,
)

WHERE = TestLocation(test_id="t.py::x", module_file="/w/t.py", module_name="t", qualname="x",
                     sys_path=("/w", "/lib"), cwd="/w")
ORDER = SchedulerOrder(name="scx_simple", argv=["/c/scx_simple", "-v"], enable=[], disable=[],
                       sysctls=[("kernel.a", "1")], files=[("/run/c.json", "{}")],
                       attach_timeout_s=60.0)


def through_the_wire(msg: dict) -> dict:
    return decode(encode(msg))


def test_a_test_request_round_trips_with_its_overrides():
    req = TestRequest(where=WHERE, accel="tcg", seed=7, wall_time=1.5,
                      scheduler_binaries={"scx_simple": "/c/scx_simple"},
                      attach_timeout_s=60.0,
                      overrides=RunOverrides(topology="1n1l2c1t", scheduler=ORDER))
    msg = through_the_wire({"type": "go", "test": req.to_dict()})
    assert TestRequest.from_dict(msg["test"]) == req
    plain = TestRequest(where=WHERE, accel="kvm")
    assert TestRequest.from_dict(through_the_wire(
        {"type": "go", "test": plain.to_dict()})["test"]) == plain


def test_the_go_message_carries_no_copy_of_the_tests_definition():
    req = TestRequest(where=WHERE, accel="tcg").to_dict()
    assert set(req) == {"where", "accel", "seed", "wall_time", "scheduler_binaries",
                        "attach_timeout_s", "overrides"}
    assert req["overrides"] == {"topology": None, "scheduler": None}


def test_a_scheduler_run_comes_back_typed():
    run = SchedulerRun(name="scx_qmap", argv=["/q"], pid=3, ops="qmap", end=SchedEnd.ERROR,
                       reason="scx_bpf_error", exit_code=1, programs=[{"id": 1}])
    back = SchedulerRun.from_dict(json.loads(json.dumps(run.to_dict())))
    assert back == run and back.end is SchedEnd.ERROR and back.failed
    assert back.to_dict()["end"] == "error exit"
    assert not SchedulerRun.from_dict({"name": "s", "argv": []}).failed  # still running


def test_outcomes_are_their_strings():
    assert Outcome("timeout") is Outcome.TIMEOUT and Outcome.CRASHED == "crashed"
    assert json.dumps({"o": Outcome.PASSED}) == '{"o": "passed"}'
    assert f"{SchedEnd.STALL}" == "watchdog stall"


def test_a_shell_request_round_trips():
    req = ShellRequest(topology="1n1l1c1t", cwd="/", command="true", seed=3)
    assert ShellRequest.from_dict(through_the_wire({"type": "go", "shell": req.to_dict()})[
        "shell"]) == req
