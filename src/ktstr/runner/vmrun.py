"""Turn one `KtstrTest` into one VM run and one `RunResult`.

The steps: resolve the kernel, build (or reuse) the initramfs, choose the
accelerator, boot, wait for the agent's hello within the boot budget, send
the test, collect messages until the result or the deadline, and shut the VM
down. Every path, timeouts and crashes included, ends in a `RunResult` and a
sidecar; no qemu outlives the call (the VM is a context manager and qemu dies
with its parent).
"""

from __future__ import annotations

import functools
import logging
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ktstr.errors import KtstrError
from ktstr.guest.protocol import Outcome, TestRequest
from ktstr.monitor.watch import ON_ERROR
from ktstr.runner.boot import BootFailed, boot
from ktstr.runner.monitoring import MonitorOutcome, RunMonitor, WatchdogOverride, judge
from ktstr.runner.schedorder import ATTACH_TIMEOUT_S, scheduler_orders
from ktstr.runner.sidecar import SCHEMA, safe_name, write_json_atomic
from ktstr.runner.snapshots import SnapshotService
from ktstr.scenario.snapshot import Snapshot
from ktstr.settings import ENV_MONITOR, settings
from ktstr.testdef import KtstrTest
from ktstr.topology import Topology
from ktstr.vm.accel import choose_accel, choose_tcg_threads, text_patch_race
from ktstr.vm.initramfs import build_initramfs
from ktstr.vm.kernel import Kernel, cache_root, resolve_kernel
from ktstr.vm.machine import SCRATCH_DISK_MB, Machine, VmSpec
from ktstr.vm.pyroot import agent_tree
from ktstr.vm.qemu import qboot_rom

log = logging.getLogger(__name__)

#: Map entries per map the on_error summary shows in a failure report.
ON_ERROR_ENTRIES = 3

TIMEOUT = "timeout"  # outcome when the host deadline hit first
CRASHED = "crashed"  # outcome when the guest died without a result

#: Wall-clock budget from qemu start to the agent's hello. Measured ~7 s under TCG on
#: 2 cores; the margin absorbs a loaded CI host running VMs in parallel.
BOOT_BUDGET_S = {"kvm": 30.0, "tcg": 120.0}


@dataclass
class RunResult:
    test_id: str
    outcome: str
    topology: str
    kernel: str
    accel: str
    scheduler: str
    error: str = ""
    traceback: str = ""
    report: str = ""  # the detail lines and the --- stats --- block
    result: dict[str, Any] | None = None  # AssertResult.to_dict()
    profile: str = ""
    topology_seen: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    boot_s: float = 0.0  # qemu start -> ready for the test (hello, or restored), host wall clock
    boot_mode: str = ""  # "cold" or "restored" (from a snapshot)
    snapshot: str = ""  # key of the snapshot restored or saved by this run
    snapshot_save_s: float = 0.0  # the guest stood still this long while it was saved
    restore_fallback: str = ""  # why a snapshot failed to restore (the run then booted cold)
    guest_uptime_at_hello_s: float = 0.0
    body_s: float = 0.0
    boot_attempts: int = 0
    boot_crashes: list[str] = field(default_factory=list)  # emulator flakes, retried
    scheduler_run: dict[str, Any] | None = None  # ktstr.guest.schedctl.SchedulerRun
    scheduler_runs: list[dict[str, Any]] = field(default_factory=list)  # all, in start order
    monitor: dict[str, Any] = field(default_factory=dict)  # runner.monitoring.MonitorOutcome
    # Op.snapshot captures by name: the latest of each, with "hits" (runner.snapshots)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    scheduler_vars: dict[str, Any] = field(default_factory=dict)  # requested, read_back/error
    console_log: str = ""
    console_tail: str = ""
    sidecar: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome in (Outcome.PASSED, Outcome.INCONCLUSIVE)

    def add_to_report(self, *lines: str) -> None:
        """Append a block (the host's monitor verdict, on_error) after the guest's report."""
        self.report = "\n".join(filter(None, [self.report.rstrip(), *lines]))


def default_deadline(test: KtstrTest, accel: str) -> float:
    """Host-side limit for the whole run: boot, the body with its set-up, and power-off."""
    if test.timeout_s is not None:
        return test.timeout_s
    slow = 4.0 if accel == "tcg" else 1.5
    # Each scheduler the test may start is loaded through the verifier at least once,
    # outside the body's holds: allow each its attach timeout.
    schedulers = {s.name for s in (test.scheduler, *test.staged_schedulers)
                  if s.spec.has_active_scheduling()}
    return (BOOT_BUDGET_S[accel] + 30.0 + test.duration_s * slow
            + ATTACH_TIMEOUT_S[accel] * len(schedulers))


@dataclass(frozen=True)
class TestLocation:
    """Where the guest finds the test: the same file at the same path."""

    test_id: str
    module_file: str
    module_name: str
    qualname: str
    sys_path: tuple[str, ...] = ()
    cwd: str = ""


def run_in_vm(test: KtstrTest, where: TestLocation, *, kernel_spec: str | None,
              run_dir: Path, cold: bool | None = None,
              monitor: bool | None = None) -> RunResult:
    """Run `test` in a VM. `cold`: boot it instead of restoring a saved guest, and save
    none; `monitor`: watch it from the host (ktstr.runner.monitoring; off: the result
    says so). None: the settings' default (KTSTR_COLD, KTSTR_MONITOR)."""
    cold = settings().cold if cold is None else cold
    monitor = settings().monitor if monitor is None else monitor
    kernel = resolve_kernel(kernel_spec)
    accel = choose_accel()
    # A missing scheduler, the test's own or a staged one, fails before a boot.
    order, staged = scheduler_orders(test, kernel, accel)
    for payload in test.payloads():  # and so does a missing payload binary
        payload.check_runnable()
    started = time.monotonic()
    res = RunResult(test_id=where.test_id, outcome=CRASHED, topology=str(test.topology),
                    kernel=kernel.key, accel=accel, scheduler=test.scheduler.name)
    workdir = run_dir / safe_name(where.test_id)
    try:
        _boot_and_run(test, where, kernel, accel, workdir, res, order, staged,
                      snapshots=not cold, monitored=monitor)
    finally:
        res.wall_s = time.monotonic() - started
        res.sidecar = str(run_dir / f"{safe_name(where.test_id)}.json")
        write_json_atomic(Path(res.sidecar), {"schema": SCHEMA, **asdict(res)})
    return res


def vm_spec(kernel: Kernel, topology: Topology, memory_mb: int, accel: str,
            **options: Any) -> VmSpec:
    """The VM every ktstr run boots: this kernel, ktstr's initramfs, this interpreter."""
    initrd = build_initramfs(kernel.vm_modules(), cache_root() / "initramfs",
                             agent_tree(sys.executable, cache_root() / "initramfs"))
    kaslr = settings().kaslr
    image = kernel.boot_image(kaslr=kaslr)
    append = (f"ktstr.python={sys.executable}", *(() if kaslr else ("nokaslr",)),
              *options.pop("append", ()))
    if options.get("disk_mb", SCRATCH_DISK_MB) > 0 and not kernel.drives_scratch_disk:
        _warn_no_disk_driver(kernel)
        options["disk_mb"] = 0
    return VmSpec(image=image, initrd=initrd, topology=topology, memory_mb=memory_mb,
                  accel=accel, firmware=qboot_rom(),
                  append=append, **options)


@functools.cache
def _warn_no_disk_driver(kernel: Kernel) -> None:
    log.warning("kernel %s has no virtio_blk for the scratch disk (its cache entry predates "
                "it): the block-I/O work types fall back to temp files in memory; hint: "
                "`ktstr kernel fetch %s` adds the module", kernel.key, kernel.key)


def _boot_and_run(test: KtstrTest, where: TestLocation, kernel: Kernel, accel: str,
                  workdir: Path, res: RunResult, order: dict[str, Any] | None,
                  staged: dict[str, dict[str, Any]], *,
                  snapshots: bool, monitored: bool) -> None:
    spec = vm_spec(kernel, test.topology, test.memory_mb, accel,
                   append=_kargs(test), tcg_threads=choose_tcg_threads(bool(staged)))
    deadline = time.monotonic() + default_deadline(test, accel)
    res.console_log = str(workdir / "console.log")
    req = TestRequest(module_file=where.module_file, module_name=where.module_name,
                      qualname=where.qualname, sys_path=list(where.sys_path), cwd=where.cwd,
                      topology=str(test.topology), accel=accel,
                      seed=random.SystemRandom().getrandbits(63), scheduler=order,
                      staged_schedulers=staged, scheduler_vars=dict(test.scheduler_vars))
    try:
        booted = boot(spec, workdir, min(BOOT_BUDGET_S[accel], default_deadline(test, accel)),
                      lambda: {"type": "go", "test": replace(req, wall_time=time.time()).to_dict()},
                      snapshots=snapshots)
    except BootFailed as e:
        res.outcome, res.error = CRASHED, e.message
        res.boot_attempts, res.boot_crashes, res.console_tail = e.attempts, e.crashes, \
            e.console_tail
        return
    machine = booted.machine
    res.boot_attempts, res.boot_crashes = booted.attempts, booted.crashes
    res.boot_s, res.boot_mode, res.snapshot = booted.boot_s, booted.mode, booted.snapshot
    res.snapshot_save_s, res.restore_fallback = booted.save_s, booted.fallback
    res.guest_uptime_at_hello_s = float(booted.hello.get("uptime_s", 0.0))
    monitor = _start_monitor(machine, test, kernel, accel, res, watched=bool(staged),
                             enabled=monitored)
    service = SnapshotService(machine.qmp, machine.memory_fds, test.topology.cpus, monitor,
                              gdbstub=machine.gdbstub)
    if staged:  # a scheduler may run: its error exit is captured as "on_error"
        service.watch_errors()
    try:
        try:
            _converse(machine, test, accel, res, deadline + booted.save_s, service)
        finally:
            service.close()
            res.snapshots = service.store.to_dict()
            res.scheduler_vars = service.scheduler_vars
            _report_on_error(res, service.watch_error if staged else "")
            if monitor is not None:
                _monitor_verdict(res, monitor.stop(), test, accel, watched=bool(staged))
            elif staged:  # a scheduler ran unwatched: say so where the verdict would be
                res.add_to_report("--- monitor ---",
                                  f"not judged: {res.monitor.get('reason', '')}")
        machine.shutdown()
    except KtstrError as e:
        res.outcome, res.error = Outcome.ERROR, str(e)
    finally:
        machine.kill()  # a no-op once it has shut down
        res.console_tail = machine.console_tail()
        if res.outcome == CRASHED and (why := text_patch_race(machine.console_text(),
                                                               spec.tcg_threads)):
            res.error = f"{res.error}; {why}"


def _report_on_error(res: RunResult, watch_error: str) -> None:
    """A scheduler's error exit comes with the state that led to it: the `on_error`
    capture's summary goes into the report (or why there could be none)."""
    capture = res.snapshots.get(ON_ERROR)
    if capture is not None:
        lines = Snapshot(capture).summary(shown=ON_ERROR_ENTRIES)
        res.add_to_report("--- on_error snapshot ---", *lines)
    elif watch_error and res.outcome not in (Outcome.PASSED, Outcome.INCONCLUSIVE):
        res.add_to_report("--- on_error snapshot ---", f"none: {watch_error}")


def _start_monitor(machine: Machine, test: KtstrTest, kernel: Kernel, accel: str,
                   res: RunResult, *, watched: bool, enabled: bool) -> RunMonitor | None:
    """The host-side monitor of this run; `watched`: a sched_ext scheduler may run, so
    the test's watchdog timeout is applied to it.

    Under emulation only a timeout the test sets itself is applied: the seed's default
    (4 s, or duration + 2 s) is sized for real hardware, and a guest running 25 times
    slower trips it with nothing wrong (measured: scx_simple's watchdog work item did
    not run for 8 s behind eight spinners on one vCPU). The scheduler's own timeout
    then stays, and the result says so, as it says why a run had no monitor.
    """
    if not enabled:
        res.monitor = {"available": False,
                       "reason": f"disabled (--no-monitor or {ENV_MONITOR}=off)"}
        return None
    hz = kernel.config_value("CONFIG_HZ")
    applies = watched and (test.watchdog_explicit or accel == "kvm")
    override = (WatchdogOverride(test.watchdog_timeout_s, int(hz))
                if applies and hz and hz.isdigit() else None)
    try:
        return RunMonitor(machine.memory_fds, machine.pid, machine.qmp, test.topology.cpus,
                          watchdog=override).start()
    except Exception as e:  # QMP said no, /proc unreadable: run without a monitor
        log.warning("monitor: not started: %s", e)
        res.monitor = {"available": False, "reason": f"not started: {e}"}
        return None


def _monitor_verdict(res: RunResult, outcome: MonitorOutcome, test: KtstrTest, accel: str, *,
                     watched: bool) -> None:
    """Judge the samples with the checks the guest judged its workers by and fold the
    verdict into the run's."""
    verdict = judge(outcome, test.merged_checks(emulated=accel != "kvm"),
                    scheduler_expected=watched)
    res.monitor = outcome.to_dict()
    text = str(verdict).strip()
    if text and (verdict.details or watched):
        res.add_to_report(text)
    if res.outcome == Outcome.PASSED and not verdict.passed:
        res.outcome = Outcome.FAILED
        res.error = "host-side monitor: " + verdict.details[0].splitlines()[0]
    elif res.outcome == Outcome.PASSED and verdict.inconclusive:
        res.outcome = Outcome.INCONCLUSIVE
        if res.result is not None:  # where the report and the summary line read the why
            res.result["inconclusive"] = "; ".join(
                filter(None, [res.result.get("inconclusive"), verdict.inconclusive]))
    if res.scheduler_run is not None:
        res.scheduler_run["watchdog"] = _watchdog_account(outcome.watchdog, test)


def _watchdog_account(wd: dict[str, Any], test: KtstrTest) -> str:
    if not wd:
        return (f"watchdog_timeout_s={test.watchdog_timeout_s:g} (the default) not applied "
                "under emulation: the scheduler's own timeout stands; set it in "
                "@ktstr_test to apply it")
    if wd.get("note"):
        return str(wd["note"])
    return (f"watchdog_timeout_s={wd['requested_s']:g} requested, "
            + (f"{wd['observed_s']:g} read back" if wd.get("observed_s") is not None
               else "not applied (no scheduler seen attached by the monitor)"))


def _kargs(test: KtstrTest) -> tuple[str, ...]:
    """The guest kernel arguments of every scheduler the test may run, once each."""
    return tuple(dict.fromkeys(k for s in (test.scheduler, *test.staged_schedulers)
                               for k in s.kargs))


def _converse(machine: Machine, test: KtstrTest, accel: str, res: RunResult,
              deadline: float, service: SnapshotService) -> None:
    """Serve the guest until its result; the deadline moves by every freeze of a capture
    (the guest did not run meanwhile)."""
    while True:
        msg = machine.recv(deadline + service.frozen_s - time.monotonic())
        if msg is None:
            _lost(machine, res, "no result within the run's deadline of "
                  f"{default_deadline(test, accel):.0f}s (timeout_s)", outcome=TIMEOUT)
            return
        kind = msg.get("type")
        if kind == "topology":
            res.topology_seen = msg.get("seen", {})
        elif kind == "log":
            log.info("guest: %s", msg.get("msg"))
        elif kind == "request":
            try:
                machine.send(service.handle(msg))
            except OSError as e:  # the port closed under us: the guest is going away
                log.warning("cannot answer the guest's %r request: %s", msg.get("op"), e)
        elif kind == "result":
            res.outcome = str(msg.get("outcome", Outcome.ERROR))
            for key in ("error", "traceback", "report", "result", "profile", "body_s"):
                if key in msg:
                    setattr(res, key, msg[key])
            res.scheduler_run = msg.get("scheduler")
            res.scheduler_runs = list(msg.get("scheduler_runs", []))
            return
        elif kind == "eof":
            _lost(machine, res, "the guest died before sending a result")
            return


def _lost(machine: Machine, res: RunResult, why: str, outcome: str = CRASHED) -> None:
    machine.kill()
    res.outcome = outcome
    res.error = f"{why}; qemu exit code {machine.exit_code}"
