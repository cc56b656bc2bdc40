"""Turn one `KtstrTest` into one VM run and one `RunResult`.

The steps: resolve the kernel and the test's schedulers (a missing binary or a
bad configuration fails before any boot), build (or reuse) the initramfs,
choose the accelerator, boot, wait for the agent's hello within the boot
budget, send the run's orders, serve the guest's requests until its result or
the deadline, and shut the VM down. Every path, timeouts and crashes included,
ends in a `RunResult` and a sidecar; no qemu outlives the call (the VM is a
context manager and qemu dies with its parent). The result is built once, at
the end, from the values each step returned.

Interrupted runs have the outcome `interrupted`, with the signal in the error:
a SIGINT or SIGTERM to the harness (a KeyboardInterrupt, ktstr.runner.signals)
stops the VM first, writes the sidecar, and passes on so the session ends; a
qemu stopped by a signal ktstr did not send ends only this run.
"""

from __future__ import annotations

import functools
import logging
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ktstr.errors import KtstrError
from ktstr.monitor.sampling import MonitorOutcome, WatchdogOverride, judge, watchdog_account
from ktstr.monitor.session import MonitorReport, MonitorSession
from ktstr.monitor.watch import ON_ERROR
from ktstr.protocol import (
    Outcome,
    RunOverrides,
    SchedulerRun,
    TestLocation,
    TestRequest,
)
from ktstr.pyimport import write_bytecode
from ktstr.runner.boot import Booted, BootFailed, StoppedFromOutside, boot
from ktstr.runner.result import RunResult
from ktstr.runner.schedorder import ATTACH_TIMEOUT_S, ResolvedSchedulers, resolve_schedulers
from ktstr.runner.sidecar import SCHEMA, safe_name, write_json_atomic
from ktstr.runner.signals import signal_behind
from ktstr.scenario.snapshot import Snapshot
from ktstr.settings import ENV_MONITOR, settings
from ktstr.testdef import KtstrTest
from ktstr.topology import Topology
from ktstr.vm.accel import choose_accel, choose_tcg_threads, text_patch_race
from ktstr.vm.cpulock import (
    CpuWaitTimeout,
    cpus_needed,
    host_cpus,
    reserve_host_cpus,
    vcpu_thread_count,
)
from ktstr.vm.initramfs import build_initramfs
from ktstr.vm.kernel import Kernel, cache_root, resolve_kernel
from ktstr.vm.machine import SCRATCH_DISK_MB, Machine, VmSpec
from ktstr.vm.perfmode import (
    HugepageChoice,
    PerformanceRecord,
    Pinning,
    fifo_why_not,
    host_hugepages,
    refuse_too_few_cpus,
)
from ktstr.vm.pyroot import agent_tree
from ktstr.vm.qemu import qboot_rom, split_memory

__all__ = ["BOOT_BUDGET_S", "RunResult", "TestLocation", "default_deadline", "run_in_vm",
           "vm_spec"]

log = logging.getLogger(__name__)

#: Map entries per map the on_error summary shows in a failure report.
ON_ERROR_ENTRIES = 3
#: What a failed sched_ext test's report says until auto-repro exists.
AUTO_REPRO_NOT_RUN = "auto-repro: not run (not implemented yet)"

#: Wall-clock budget from qemu start to the agent's hello. Measured ~7 s under TCG on
#: 2 cores; the margin absorbs a loaded CI host running VMs in parallel.
BOOT_BUDGET_S = {"kvm": 30.0, "tcg": 120.0}
#: After its result the guest says bye at once, then powers off; one that does not say
#: bye has what is left of this long to power off by itself before qemu is told to quit.
POWER_OFF_GRACE_S = 10.0


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
class RunPlan:
    """What the host decided for one run before booting it."""

    test: KtstrTest
    where: TestLocation
    kernel: Kernel
    accel: str
    schedulers: ResolvedSchedulers
    overrides: RunOverrides
    deadline_s: float  # default_deadline(test, accel)

    @property
    def watched(self) -> bool:
        """A sched_ext scheduler may run: its error exit is captured, the monitor judges."""
        return bool(self.schedulers.staged)

    def request(self) -> TestRequest:
        return TestRequest(where=self.where, accel=self.accel,
                           seed=random.SystemRandom().getrandbits(63),
                           scheduler_binaries=self.schedulers.binaries,
                           attach_timeout_s=ATTACH_TIMEOUT_S[self.accel],
                           overrides=self.overrides)

    def empty_result(self, **values: Any) -> RunResult:
        """This run's result with `values`; a run that gives none crashed."""
        return RunResult(test_id=self.where.test_id, topology=str(self.test.topology),
                         kernel=self.kernel.key, accel=self.accel,
                         scheduler=self.test.scheduler.name,
                         **{"outcome": Outcome.CRASHED, **values})


def run_in_vm(test: KtstrTest, where: TestLocation, *, kernel_spec: str | None,
              run_dir: Path, cold: bool | None = None, monitor: bool | None = None,
              replaced: bool = False) -> RunResult:
    """Run `test` in a VM. `cold`: boot it instead of restoring a saved guest, and save
    none; `monitor`: watch it from the host (off: the result says so); None: the
    settings' default (KTSTR_COLD, KTSTR_MONITOR). `replaced`: `test` is not the one
    `where` names as its module declares it (the verifier's probe under a cell's
    scheduler and topology): its topology and own scheduler travel as the run's
    overrides."""
    cold = settings().cold if cold is None else cold
    monitor = settings().monitor if monitor is None else monitor
    kernel = resolve_kernel(kernel_spec)
    accel = choose_accel()
    # A missing scheduler, the test's own or a staged one, fails before a boot.
    schedulers = resolve_schedulers(test, kernel, accel)
    for payload in test.payloads():  # and so does a missing payload binary
        payload.check_runnable()
    overrides = (RunOverrides(topology=str(test.topology), scheduler=schedulers.own)
                 if replaced else RunOverrides())
    # The guest imports the module from bytecode the host compiled (ktstr.pyimport).
    where = replace(where, bytecode=write_bytecode(where.module_file,
                                                   cache_root() / "bytecode"))
    plan = RunPlan(test, where, kernel, accel, schedulers, overrides,
                   default_deadline(test, accel))
    if test.performance_mode:  # a host too small for it is refused before a boot
        refuse_too_few_cpus(where.test_id, test.topology.cpus, _vcpu_thread_count(plan),
                            len(host_cpus()))
    started = time.monotonic()
    sidecar = run_dir / f"{safe_name(where.test_id)}.json"
    res = plan.empty_result()
    try:
        res = _boot_and_run(plan, run_dir / safe_name(where.test_id),
                            snapshots=not cold, monitored=monitor)
    except KeyboardInterrupt as e:  # the VM is stopped by now; the session ends
        res = plan.empty_result(outcome=Outcome.INTERRUPTED,
                                error=f"interrupted by {signal_behind(e).name}: the run "
                                "was stopped before the guest's result",
                                console_log=str(run_dir / safe_name(where.test_id)
                                                / "console.log"))
        raise
    finally:
        res = replace(res, wall_s=time.monotonic() - started, sidecar=str(sidecar))
        write_json_atomic(sidecar, {"schema": SCHEMA, **res.to_dict()})
    return res


def vm_spec(kernel: Kernel, topology: Topology, memory_mb: int, accel: str,
            **options: Any) -> VmSpec:
    """The VM every ktstr run boots: this kernel, ktstr's initramfs, this interpreter."""
    initrd = build_initramfs(kernel.vm_modules(), cache_root() / "initramfs",
                             agent_tree(sys.executable, cache_root() / "initramfs"))
    kaslr = settings().kaslr
    image = kernel.boot_image(kaslr=kaslr)
    # A test's own `nokaslr` karg keeps the kernel where it was linked.
    relocatable = (kernel.host_kaslr_image() if kaslr and settings().host_kaslr
                   and "nokaslr" not in options.get("append", ()) else None)
    append = (f"ktstr.python={sys.executable}", *(() if kaslr else ("nokaslr",)),
              *options.pop("append", ()))
    if options.get("disk_mb", SCRATCH_DISK_MB) > 0 and not kernel.drives_scratch_disk:
        _warn_no_disk_driver(kernel)
        options["disk_mb"] = 0
    return VmSpec(image=relocatable or image, initrd=initrd, topology=topology,
                  memory_mb=memory_mb, accel=accel, firmware=qboot_rom(),
                  append=append, host_kaslr=relocatable is not None, **options)


@functools.cache
def _warn_no_disk_driver(kernel: Kernel) -> None:
    log.warning("kernel %s has no virtio_blk for the scratch disk (its cache entry predates "
                "it): the block-I/O work types fall back to temp files in memory; hint: "
                "`ktstr kernel fetch %s` adds the module", kernel.key, kernel.key)


def _boot_and_run(plan: RunPlan, workdir: Path, *, snapshots: bool,
                  monitored: bool) -> RunResult:
    """Reserve the host CPUs the VM's vCPU threads need (waiting for them when other
    VMs hold them, ktstr.vm.cpulock), then run it; the deadline starts after the wait.
    In performance mode the VM's vCPU threads are pinned to the CPUs reserved, and its
    RAM goes on hugepages when the host has them (ktstr.vm.perfmode)."""
    test = plan.test
    spec = vm_spec(plan.kernel, test.topology, test.memory_mb, plan.accel,
                   append=_kargs(test), tcg_threads=choose_tcg_threads(plan.watched))
    hugepages: HugepageChoice | None = None  # performance mode's choice for guest RAM
    if test.performance_mode:
        hugepages = host_hugepages(split_memory(test.memory_mb, test.topology.numa_nodes))
        if hugepages.mem_dir is not None:
            # A restore writes guest RAM into its files with write(2), which hugetlbfs
            # refuses: such a VM boots cold and saves no snapshot.
            spec = replace(spec, mem_dir=hugepages.mem_dir)
            snapshots = False
    needed = cpus_needed(test.topology.cpus, plan.accel, spec.tcg_threads, len(host_cpus()))
    try:
        with reserve_host_cpus(needed, test_id=plan.where.test_id) as held:
            if test.performance_mode:
                spec = replace(spec, pinning=Pinning(tuple(held.cpus), plan.accel == "kvm"))
            res = _run_vm(plan, spec, workdir, snapshots=snapshots, monitored=monitored,
                          hugepages=hugepages)
    except CpuWaitTimeout as e:
        return plan.empty_result(outcome=Outcome.ERROR, error=str(e), cpu_wait_s=e.waited_s)
    if hugepages is not None:  # performance mode; a VM that never came up pinned nothing
        record = res.performance or PerformanceRecord.of(None, hugepages,
                                                         fifo_why_not(plan.accel))
        res = replace(res, performance=record, report="\n".join(
            filter(None, [res.report.rstrip(), "--- performance mode ---", record.line()])))
    return replace(res, cpu_wait_s=held.wait_s)


def _vcpu_thread_count(plan: RunPlan) -> int:
    """The host threads that will run the VM's vCPUs (ktstr.vm.accel decides TCG's)."""
    return vcpu_thread_count(plan.test.topology.cpus, plan.accel,
                             choose_tcg_threads(plan.watched))


def _run_vm(plan: RunPlan, spec: VmSpec, workdir: Path, *, snapshots: bool,
            monitored: bool, hugepages: HugepageChoice | None = None) -> RunResult:
    """`hugepages`: performance mode's choice for guest RAM (None: not in performance
    mode); the result then records what the machine's pinning did."""
    test, accel = plan.test, plan.accel
    deadline = time.monotonic() + plan.deadline_s
    console_log = str(workdir / "console.log")
    req = plan.request()
    try:
        booted = boot(spec, workdir, min(BOOT_BUDGET_S[accel], plan.deadline_s),
                      lambda: {"type": "go", "test": replace(req, wall_time=time.time()).to_dict()},
                      snapshots=snapshots)
    except BootFailed as e:
        return plan.empty_result(error=e.message, boot_attempts=e.attempts,
                                 boot_crashes=e.crashes, console_tail=e.console_tail,
                                 console_log=console_log)
    except StoppedFromOutside as e:
        return plan.empty_result(outcome=Outcome.INTERRUPTED, error=e.message,
                                 console_tail=e.console_tail, console_log=console_log)
    machine = booted.machine
    answer = GuestAnswer()
    after: MonitorReport | None = None
    failure = ""
    try:
        session = MonitorSession.open(
            machine, test.topology.cpus, watchdog=_watchdog_override(plan),
            not_sampled="" if monitored else f"disabled (--no-monitor or {ENV_MONITOR}=off)",
            watch_errors=plan.watched)
        try:
            answer = _converse(machine, session, deadline + booted.save_s, plan.deadline_s)
        except KeyboardInterrupt:
            machine.kill()  # the VM first: the monitor's wrap-up waits on nothing then
            raise
        finally:
            after = session.finish()
        bye_by = time.monotonic() + POWER_OFF_GRACE_S
        machine.shutdown(grace=0.0 if _said_bye(machine, POWER_OFF_GRACE_S)
                         else max(0.0, bye_by - time.monotonic()))
    except KtstrError as e:
        failure = str(e)
    finally:
        machine.kill()  # a no-op once it has shut down
        console_tail = machine.console_tail()
        race = (text_patch_race(machine.console_text(), spec.tcg_threads)
                if answer.outcome == Outcome.CRASHED and not failure else None)
    if failure:
        answer = replace(answer, outcome=Outcome.ERROR, error=failure)
    elif race:
        answer = replace(answer, error=f"{answer.error}; {race}")
    if after is None:  # the session itself failed to finish
        after = MonitorReport(MonitorOutcome.not_started(failure), {}, None, "")
    performance = (None if hugepages is None else
                   PerformanceRecord.of(machine.pinned, hugepages, fifo_why_not(accel)))
    return _result(plan, answer, after, **_boot_values(booted), console_log=console_log,
                   console_tail=console_tail, performance=performance)


def _said_bye(machine: Machine, timeout: float) -> bool:
    """Whether the guest said bye (within `timeout` s of its result): it then has nothing
    more to tell, and its power-off (~0.1 s of emulated ACPI and device shutdown under
    TCG) is cut short by a QMP quit, which ends qemu as cleanly."""
    msg = machine.recv(timeout)
    return msg is not None and msg.get("type") == "bye"


def _boot_values(booted: Booted) -> dict[str, Any]:
    return {"boot_attempts": booted.attempts, "boot_crashes": booted.crashes,
            "boot_s": booted.boot_s, "boot_mode": booted.mode, "snapshot": booted.snapshot,
            "snapshot_save_s": booted.save_s, "restore_fallback": booted.fallback,
            "guest_uptime_at_hello_s": float(booted.hello.get("uptime_s", 0.0))}


def _watchdog_override(plan: RunPlan) -> WatchdogOverride | None:
    """The test's watchdog timeout to hold on each scheduler that attaches, or None.

    Under emulation only a timeout the test sets itself is applied: the default
    (4 s, or duration + 2 s) is sized for real hardware, and a guest running 25 times
    slower trips it with nothing wrong (measured: scx_simple's watchdog work item did
    not run for 8 s behind eight spinners on one vCPU). The scheduler's own timeout
    then stays, and the result says so.
    """
    test = plan.test
    if not plan.watched or not (test.watchdog_explicit or plan.accel == "kvm"):
        return None
    hz = plan.kernel.config_value("CONFIG_HZ")
    return WatchdogOverride(test.watchdog_timeout_s, int(hz)) if hz and hz.isdigit() else None


@dataclass(frozen=True)
class GuestAnswer:
    """What the conversation with the guest ended with: its result, or why none came."""

    outcome: Outcome = Outcome.CRASHED
    error: str = ""
    traceback: str = ""
    report: str = ""
    result: dict[str, Any] | None = None
    profile: str = ""
    body_s: float = 0.0
    topology_seen: dict[str, Any] = field(default_factory=dict)
    scheduler_run: SchedulerRun | None = None
    scheduler_runs: list[SchedulerRun] = field(default_factory=list)

    @classmethod
    def from_result(cls, msg: dict[str, Any], topology_seen: dict[str, Any]) -> GuestAnswer:
        """The guest's "result" message."""
        run = msg.get("scheduler")
        result = msg.get("result")
        return cls(outcome=Outcome(msg.get("outcome", Outcome.ERROR)),
                   error=str(msg.get("error", "")), traceback=str(msg.get("traceback", "")),
                   report=str(msg.get("report", "")),
                   result=None if result is None else dict(result),
                   profile=str(msg.get("profile", "")), body_s=float(msg.get("body_s", 0.0)),
                   topology_seen=topology_seen,
                   scheduler_run=None if run is None else SchedulerRun.from_dict(run),
                   scheduler_runs=[SchedulerRun.from_dict(r)
                                   for r in msg.get("scheduler_runs", [])])


def _converse(machine: Machine, session: MonitorSession, deadline: float,
              deadline_s: float) -> GuestAnswer:
    """Serve the guest until its result; the deadline moves by every freeze of the
    session (the guest did not run meanwhile)."""
    seen: dict[str, Any] = {}
    while True:
        msg = machine.recv(deadline + session.frozen_s - time.monotonic())
        if msg is None:
            return _lost(machine, seen, "no result within the run's deadline of "
                         f"{deadline_s:.0f}s (timeout_s)", Outcome.TIMEOUT)
        kind = msg.get("type")
        if kind == "topology":
            seen = msg.get("seen", {})
        elif kind == "log":
            log.info("guest: %s", msg.get("msg"))
        elif kind == "request":
            try:
                machine.send(session.handle(msg))
            except OSError as e:  # the port closed under us: the guest is going away
                log.warning("cannot answer the guest's %r request: %s", msg.get("op"), e)
        elif kind == "result":
            return GuestAnswer.from_result(msg, seen)
        elif kind == "eof":
            outside = machine.stopped_from_outside()
            if outside is not None:
                machine.kill()
                return GuestAnswer(outcome=Outcome.INTERRUPTED, topology_seen=seen,
                                   error=f"{outside}, before the guest's result")
            return _lost(machine, seen, "the guest died before sending a result",
                         Outcome.CRASHED)


def _lost(machine: Machine, seen: dict[str, Any], why: str, outcome: Outcome) -> GuestAnswer:
    machine.kill()
    return GuestAnswer(outcome=outcome, error=f"{why}; qemu exit code {machine.exit_code}",
                       topology_seen=seen)


def _result(plan: RunPlan, answer: GuestAnswer, after: MonitorReport,
            **values: Any) -> RunResult:
    """The run's result: the guest's answer with the host's verdicts folded in."""
    test = plan.test
    outcome, error, result = answer.outcome, answer.error, answer.result
    blocks = [*_on_error_block(after, plan.watched, outcome)]
    monitor = after.monitor
    scheduler_run = answer.scheduler_run
    if monitor.started:
        verdict = judge(monitor, test.merged_checks(emulated=plan.accel != "kvm"),
                        scheduler_expected=plan.watched)
        text = str(verdict).strip()
        if text and (verdict.details or plan.watched):
            blocks.append(text)
        if outcome == Outcome.PASSED and not verdict.passed:
            outcome = Outcome.FAILED
            error = "host-side monitor: " + verdict.details[0].splitlines()[0]
        elif outcome == Outcome.PASSED and verdict.inconclusive:
            outcome = Outcome.INCONCLUSIVE
            if result is not None:  # where the report and the summary line read the why
                result = {**result, "inconclusive": "; ".join(
                    filter(None, [result.get("inconclusive"), verdict.inconclusive]))}
        if scheduler_run is not None:
            scheduler_run = replace(scheduler_run,
                                    watchdog=watchdog_account(monitor, test.watchdog_timeout_s))
    elif plan.watched:  # a scheduler ran unwatched: say so where the verdict would be
        blocks += ["--- monitor ---", f"not judged: {monitor.reason}"]
    if (outcome not in (Outcome.PASSED, Outcome.INCONCLUSIVE, Outcome.INTERRUPTED)
            and test.auto_repro
            and test.scheduler.spec.has_active_scheduling()):
        blocks.append(AUTO_REPRO_NOT_RUN)
    return plan.empty_result(
        outcome=outcome, error=error, traceback=answer.traceback,
        report="\n".join(filter(None, [answer.report.rstrip(), *blocks])),
        result=result, profile=answer.profile, topology_seen=answer.topology_seen,
        body_s=answer.body_s, scheduler_run=scheduler_run,
        scheduler_runs=answer.scheduler_runs, monitor=monitor,
        snapshots={name: Snapshot(c) for name, c in after.snapshots.items()},
        scheduler_vars=after.scheduler_vars, **values)


def _on_error_block(after: MonitorReport, watched: bool, outcome: Outcome) -> list[str]:
    """A scheduler's error exit comes with the state that led to it: the `on_error`
    capture's summary goes into the report (or why there could be none)."""
    capture = after.snapshots.get(ON_ERROR)
    if capture is not None:
        return ["--- on_error snapshot ---",
                *Snapshot(capture).summary(shown=ON_ERROR_ENTRIES)]
    if watched and after.watch_error and outcome not in (Outcome.PASSED,
                                                         Outcome.INCONCLUSIVE):
        return ["--- on_error snapshot ---", f"none: {after.watch_error}"]
    return []


def _kargs(test: KtstrTest) -> tuple[str, ...]:
    """The guest kernel arguments of every scheduler the test may run, once each."""
    return tuple(dict.fromkeys(k for s in (test.scheduler, *test.staged_schedulers)
                               for k in s.kargs))
