from ktstr.runner.boot import kernel_crash_line as _kernel_crash_line
from ktstr.runner.boot import silent_reset
from ktstr.runner.vmrun import default_deadline
from ktstr.testdef import ktstr_test

CONSOLE = """[    0.958841] smp: Brought up 1 node, 4 CPUs
[    0.982634] Oops: int3: 0000 [#1] SMP NOPTI
[    0.983812] RIP: 0010:update_sd_lb_stats.constprop.0+0x594/0xe40
[    0.985039] Kernel panic - not syncing: Fatal exception in interrupt
"""


def test_a_boot_crash_is_recognised_by_its_first_oops_line():
    assert _kernel_crash_line(CONSOLE) == "[    0.982634] Oops: int3: 0000 [#1] SMP NOPTI"


def test_a_clean_boot_log_is_not_a_crash():
    assert _kernel_crash_line("[ 2.5] Run /init as init process\n[ 3.0] 9p: Installing\n") is None


def test_a_console_cut_off_mid_boot_is_a_reset_to_retry():
    console = "[    1.93] sched_clock: Marking stable\n[    1.95] Freeing initrd memory: 40100K\n"
    assert silent_reset(console) == ("the guest reset with no crash report and no power-off, "
                                     "after: [    1.95] Freeing initrd memory: 40100K")
    assert silent_reset("") is not None


def test_a_guest_that_powered_off_was_not_reset():
    assert silent_reset("[ 5.9] ktstr: agent crashed:\n[ 6.0] reboot: Power down\n") is None


def test_deadline_is_the_tests_own_timeout_or_grows_with_duration():
    assert default_deadline(ktstr_test(timeout_s=45)(lambda ctx: None), "tcg") == 45
    short = default_deadline(ktstr_test(duration_s=1)(lambda ctx: None), "tcg")
    long = default_deadline(ktstr_test(duration_s=30)(lambda ctx: None), "tcg")
    assert long - short == (30 - 1) * 4.0


def test_deadline_allows_each_scheduler_the_test_may_start_its_attach_timeout():
    from ktstr.runner.schedorder import ATTACH_TIMEOUT_S
    from ktstr.scheduler import Scheduler
    simple, central = Scheduler("scx_simple"), Scheduler("scx_central")
    plain = default_deadline(ktstr_test(duration_s=2)(lambda ctx: None), "tcg")
    switching = default_deadline(ktstr_test(duration_s=2, scheduler=simple,
                                            staged_schedulers=[simple, central])(
        lambda ctx: None), "tcg")
    assert switching - plain == 2 * ATTACH_TIMEOUT_S["tcg"]


def _finished(test, outcome: str, monitor_reason: str = "disabled (KTSTR_MONITOR=off)"):
    """The result the runner builds from a guest answer with `outcome` (no VM)."""
    from pathlib import Path

    from ktstr.monitor.sampling import MonitorOutcome
    from ktstr.monitor.session import MonitorReport
    from ktstr.protocol import Outcome, RunOverrides, TestLocation
    from ktstr.runner.schedorder import ResolvedSchedulers
    from ktstr.runner.vmrun import GuestAnswer, RunPlan, _result
    from ktstr.vm.kernel import Kernel

    kernel = Kernel(key="k", version="7.2.13", image=Path("/k/vmlinuz"), config=None,
                    modules_dir=None, vmlinux=None)
    staged = {} if not test.scheduler.spec.has_active_scheduling() else {
        test.scheduler.name: None}
    plan = RunPlan(test, TestLocation("t.py::x", "/t.py", "t", "x"), kernel, "tcg",
                   ResolvedSchedulers({}, None, staged), RunOverrides(), 100.0)  # type: ignore[arg-type]
    after = MonitorReport(MonitorOutcome.not_started(monitor_reason), {}, None, "")
    return _result(plan, GuestAnswer(outcome=Outcome(outcome), report="  cg0: starved"),
                   after)


def test_a_failed_sched_ext_test_says_no_auto_repro_ran():
    from ktstr.runner.vmrun import AUTO_REPRO_NOT_RUN
    from ktstr.scheduler import Scheduler
    sched = ktstr_test(scheduler=Scheduler("scx_simple"))(lambda ctx: None)
    failed = _finished(sched, "failed")
    assert failed.report.splitlines()[-1] == "auto-repro: not run (not implemented yet)"
    assert failed.report.splitlines()[-1] == AUTO_REPRO_NOT_RUN
    assert "--- monitor ---\nnot judged: disabled (KTSTR_MONITOR=off)" in failed.report
    assert AUTO_REPRO_NOT_RUN in _finished(sched, "timeout").report
    assert AUTO_REPRO_NOT_RUN not in _finished(sched, "passed").report
    eevdf = ktstr_test()(lambda ctx: None)
    assert AUTO_REPRO_NOT_RUN not in _finished(eevdf, "failed").report
    assert _finished(eevdf, "failed").report == "  cg0: starved"
