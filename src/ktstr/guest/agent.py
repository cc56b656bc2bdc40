"""The guest agent: say hello, take the test, check the topology, run the body, report.

Runs as a child of PID 1 (see __main__). Every outcome, including a body that
raises and a topology mismatch, becomes one "result" message; the host never
has to infer a result from silence unless the guest itself died.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from ktstr.checks import Assert, AssertResult
from ktstr.errors import KtstrError
from ktstr.guest import init
from ktstr.guest.hostsnap import HostSnapshots
from ktstr.guest.port import GuestPort, find_port
from ktstr.guest.schedctl import SchedulerFailed, SchedulerWatch
from ktstr.guest.schedorder import orders_for_test
from ktstr.guest.schedslot import SchedulerSlot
from ktstr.guest.shell import run_shell
from ktstr.guest.topocheck import TopologyView, compare
from ktstr.protocol import Outcome, SchedulerOrder, ShellRequest, TestLocation, TestRequest
from ktstr.pyimport import import_file
from ktstr.scenario import Ctx, TestTopology
from ktstr.scheduler import Scheduler
from ktstr.testdef import KtstrTest
from ktstr.topology import Topology

log = logging.getLogger("ktstr.guest")


class KmsgHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        init.kmsg(self.format(record))


def uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


@functools.cache
def topology_view() -> TopologyView:
    """The CPUs, LLCs and nodes this guest sees, as the host compares them."""
    return TopologyView.read()


@functools.cache
def test_topology() -> TestTopology:
    """This guest's topology as the test body's `ctx.topo` holds it."""
    return TestTopology.from_system()


def run_agent() -> int:
    logging.basicConfig(level=logging.INFO, handlers=[KmsgHandler()])
    # The machine's topology is fixed for its life: read before the hello, so that a
    # restored guest has it already. After a restore every code path runs for the first
    # time (the emulator's translation cache is not saved): reading sysfs then cost
    # ~0.1 s of every run under TCG.
    topology_view()
    test_topology()
    port = GuestPort(find_port())
    init.wait_for_modules()
    port.send({"type": "hello", "uname": os.uname().release, "uptime_s": uptime(),
               "pid": os.getpid()})
    go = port.recv()
    if go.get("type") != "go":
        raise RuntimeError(f"expected a go message, got {go!r}")
    request: ShellRequest | TestRequest = (ShellRequest.from_dict(go["shell"]) if "shell" in go
                                           else TestRequest.from_dict(go["test"]))
    try:
        take_orders(request.wall_time, request.seed)
    except OSError as e:
        result: dict[str, Any] = {"outcome": Outcome.ERROR,
                                  "error": f"cannot prepare the guest for the run: {e}"}
    else:
        result = serve(port, request)
    port.send({"type": "result", **result})
    port.send({"type": "bye", "uptime_s": uptime()})
    return 0


def serve(port: GuestPort, request: ShellRequest | TestRequest) -> dict[str, Any]:
    if isinstance(request, ShellRequest):
        problems = check_topology(port, Topology.parse(request.topology))
        return ({"outcome": Outcome.ERROR, "error": "; ".join(problems)} if problems
                else run_shell(request))
    return run_request(port, request)


def take_orders(wall_time: float, seed: int) -> None:
    """Make this guest the run's own, whether it booted or was restored from a snapshot.

    A restored guest wakes with the clock and the RNG state of the moment it was
    saved, and without the host root (see ktstr.vm.snapshot): all three are set
    here, from what the host sent with the orders.
    """
    init.set_wall_clock(wall_time)
    random.seed(seed)
    init.reseed_kernel_rng(seed.to_bytes(8, "little") + os.urandom(8))
    init.enter_host_root()
    # Nothing the guest writes outlives it: a .pyc of the test's module would be written
    # for no one, after copying its directories up into the overlay.
    sys.dont_write_bytecode = True


def check_topology(port: GuestPort, want: Topology) -> list[str]:
    """Compare what the guest sees with `want`, tell the host, return the differences."""
    seen = topology_view()
    problems = compare(want, seen)
    port.send({"type": "topology", "ok": not problems, "seen": seen.to_dict(),
               "problems": problems})
    return [f"guest topology does not match {want}: " + "; ".join(problems)] if problems else []


def run_request(port: GuestPort, req: TestRequest) -> dict[str, Any]:
    """Load the test from its module, check the topology it asks for (or the run's
    override), build its schedulers' orders with the host's binaries, run the body."""
    try:
        test = load_test(req.where)
    except Exception as e:
        error = f"cannot load the test in the guest: {e}"
        # The host waits for the topology answer first (a restored guest is alive once it
        # gives it): it says what the guest sees, and that nothing could be compared.
        port.send({"type": "topology", "ok": False, "seen": topology_view().to_dict(),
                   "problems": [error]})
        return {"outcome": Outcome.ERROR, "error": error, "traceback": traceback.format_exc()}
    override = req.overrides.topology
    problems = check_topology(port, Topology.parse(override) if override else test.topology)
    if problems:
        return {"outcome": Outcome.ERROR, "error": problems[0]}
    try:
        own, staged = scheduler_orders(test, req)
    except KtstrError as e:
        return {"outcome": Outcome.ERROR, "error": f"cannot start the test's schedulers: {e}"}
    return run_body(test, req.accel, own, staged, HostSnapshots(port))


def scheduler_orders(test: KtstrTest, req: TestRequest,
                     ) -> tuple[SchedulerOrder | None, dict[str, SchedulerOrder]]:
    """The test's orders built by the host's rule with the binaries the host found; a
    scheduler the run overrides replaces the test's own."""
    def binary_of(sched: Scheduler) -> str:
        try:
            return req.scheduler_binaries[sched.name]
        except KeyError:
            raise KtstrError(f"the host found no binary for scheduler {sched.name} (it "
                             f"sent {sorted(req.scheduler_binaries)})") from None

    own, staged = orders_for_test(test, binary_of, req.attach_timeout_s)
    if req.overrides.scheduler is not None:
        own = req.overrides.scheduler
        staged[own.name] = own
    return own, staged


def load_test(where: TestLocation) -> KtstrTest:
    os.chdir(where.cwd)
    for p in reversed(where.sys_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    module = sys.modules.get(where.module_name) or import_file(
        where.module_name, where.module_file, where.bytecode)
    obj: Any = module
    for part in where.qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, KtstrTest):
        raise TypeError(f"{where.module_name}.{where.qualname} is not a @ktstr_test")
    return obj


class SchedulerDied(Exception):
    """Raised in the test body's thread when the scheduler under test stops running."""


def run_body(test: KtstrTest, accel: str, own: SchedulerOrder | None,
             staged: dict[str, SchedulerOrder], host: HostSnapshots) -> dict[str, Any]:
    emulated = accel != "kvm"
    checks = test.merged_checks(emulated=emulated)
    base: dict[str, Any] = {"profile": "emulation" if emulated else "release"}
    slot = SchedulerSlot(own, staged)
    try:
        slot.start()
    except SchedulerFailed as e:
        return {**base, "outcome": Outcome.FAILED, "error": e.run.summary(),
                **_scheduler_runs(slot)}
    if test.scheduler_vars:
        try:  # before the body: the scheduler runs the whole workload so tuned
            host.write_vars(dict(test.scheduler_vars))
        except KtstrError as e:
            slot.stop()
            return {**base, "outcome": Outcome.ERROR,
                    "error": f"cannot write scheduler_vars: {e}", **_scheduler_runs(slot)}
    started = time.monotonic()
    with _interrupt_on_scheduler_death(slot):
        try:
            result = _run_fn(test, checks, base, slot, host)
        except SchedulerDied as e:  # it arrived after the body, during its clean-up
            result = {**base, "outcome": Outcome.FAILED, "error": str(e)}
    slot.stop()
    result.update(_scheduler_runs(slot))
    failed = slot.failed()
    if failed is not None and result["outcome"] != Outcome.FAILED:
        result.update(outcome=Outcome.FAILED, error=failed.summary())
    result["body_s"] = time.monotonic() - started
    return result


def _scheduler_runs(slot: SchedulerSlot) -> dict[str, Any]:
    """Every scheduler of the run for the host, and the one to report: the first that
    failed, else the last."""
    if not slot.runs:
        return {}
    shown = slot.failed() or slot.runs[-1]
    return {"scheduler": shown.to_dict(), "scheduler_runs": [r.to_dict() for r in slot.runs]}


@contextlib.contextmanager
def _interrupt_on_scheduler_death(slot: SchedulerSlot) -> Iterator[None]:
    """While the body runs, a scheduler that stops on its own raises SchedulerDied in it
    at once.

    The watch thread signals the main thread (a real signal, so a body blocked in a
    sleep or a wait wakes up), whose handler raises.
    """
    if not slot.staged:
        yield
        return
    armed = [True]

    def handler(_sig: int, _frame: object) -> None:
        if armed[0]:
            armed[0] = False  # once: the clean-up after it must not be interrupted again
            raise SchedulerDied(slot.summary())

    previous = signal.signal(signal.SIGUSR1, handler)
    main = threading.main_thread().ident
    assert main is not None
    watch = SchedulerWatch(slot, lambda: signal.pthread_kill(main, signal.SIGUSR1)).start()
    try:
        yield
    finally:
        armed[0] = False
        watch.stop()
        signal.signal(signal.SIGUSR1, previous)


def _run_fn(test: KtstrTest, checks: Assert, base: dict[str, Any],
            slot: SchedulerSlot, host: HostSnapshots) -> dict[str, Any]:
    ctx = Ctx.create(checks=checks, duration=test.duration_s, topo=test_topology(),
                     workers_per_cgroup=test.workers_per_cgroup, scheduler=slot,
                     snapshot_control=host)
    primary: AssertResult | None = None
    try:
        outcome = test.fn(ctx)
        if test.payload is not None and \
                not any(r.name == test.payload.name for r in ctx.payload_runs):
            # The primary payload is the test's workload when the body did not run it.
            primary = ctx.payload(test.payload).result
    except SchedulerDied as e:
        return {**base, "outcome": Outcome.FAILED, "error": str(e)}
    except Exception as e:
        return {**base, "outcome": Outcome.FAILED, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc()}
    finally:
        ctx.cgroups.close()
    if outcome is None:
        outcome = AssertResult.ok()
    if not isinstance(outcome, AssertResult):
        return {**base, "outcome": Outcome.ERROR,
                "error": f"the test body returned {type(outcome).__name__}, "
                         "expected an AssertResult or None"}
    if primary is not None:
        outcome.merge(primary)
    _record_payloads(outcome, ctx)
    verdict = (Outcome.FAILED if not outcome.passed
               else Outcome.INCONCLUSIVE if outcome.inconclusive else Outcome.PASSED)
    return {**base, "outcome": verdict, "result": outcome.to_dict(), "report": str(outcome)}


def _record_payloads(outcome: AssertResult, ctx: Ctx) -> None:
    """Every payload run reaches the sidecar: those the body's result does not carry are
    added as recorded only (the body chose not to judge them)."""
    for run in ctx.payload_runs:
        if not any(run is p for p in outcome.payloads):
            run.judged = False
            outcome.payloads.append(run)
