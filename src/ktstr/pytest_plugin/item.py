"""`KtstrItem`: one `@ktstr_test` as a pytest item, run in its own VM.

A failed check is a failed test, reported with the detail lines, the
`--- stats ---` block and the guest console tail, never with a Python
traceback of the harness (`repr_failure`). A result judged inconclusive
under emulation is a skip whose reason says why.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import pytest

from ktstr.errors import KtstrError
from ktstr.gauntlet import Variant
from ktstr.protocol import Outcome, SchedEnd, SchedulerRun, TestLocation
from ktstr.runner.vmrun import RunResult, run_in_vm
from ktstr.testdef import KtstrTest

RUN_DIR_KEY = pytest.StashKey["Any"]()


class KtstrRunFailed(Exception):
    """Carries the RunResult of a failed run to repr_failure."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result.test_id)
        self.result = result


class KtstrItem(pytest.Item):
    """One run of `test`: its own topology, or a gauntlet `variant`'s (then the item's
    name is the module attribute's, `qualname`, with the variant's suffix)."""

    def __init__(self, *, test: KtstrTest, variant: Variant | None = None,
                 qualname: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test = test
        self.variant = variant
        self.qualname = qualname or self.name
        for mark in getattr(test, "pytestmark", []):  # marks stacked on the decorated function
            self.own_markers.append(mark)
            self.keywords[mark.name] = mark
        self.add_marker("ktstr")

    def location_info(self) -> TestLocation:
        module = self.getparent(pytest.Module)
        assert module is not None
        mod = module.obj
        return TestLocation(test_id=self.nodeid, module_file=str(mod.__file__),
                            module_name=mod.__name__, qualname=self.qualname,
                            sys_path=tuple(sys.path), cwd=str(self.config.invocation_params.dir))

    def runtest(self) -> None:
        test, v = self.test, self.variant
        if v is not None:  # the guest gets the preset's topology as the run's override
            test = replace(test, topology=v.topology, memory_mb=v.memory_mb)
        result = run_in_vm(test, self.location_info(),
                           kernel_spec=self.config.getoption("ktstr_kernel", None),
                           run_dir=self.config.stash[RUN_DIR_KEY],
                           cold=self.config.getoption("ktstr_cold", None),
                           monitor=self.config.getoption("ktstr_monitor", None),
                           replaced=v is not None)
        self.user_properties.append(("ktstr_summary", summary_line(result)))
        self.user_properties.append(("ktstr_sidecar", result.sidecar))
        if result.outcome == Outcome.INCONCLUSIVE:
            pytest.skip(f"inconclusive: {(result.result or {}).get('inconclusive')}")
        if not result.passed:
            raise KtstrRunFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, KtstrRunFailed):
            return failure_text(excinfo.value.result)
        if isinstance(excinfo.value, KtstrError):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        topo = self.variant.topology if self.variant else self.test.topology
        return self.path, None, f"ktstr/{self.name} [{topo}]"


def summary_line(r: RunResult) -> str:
    """The result line (PASS/FAIL/INCONCLUSIVE, wall time, id, topology, accel, boot),
    then the stats and payload blocks when there are some."""
    word = {Outcome.PASSED: "PASS", Outcome.INCONCLUSIVE: "INCONCLUSIVE",
            Outcome.INTERRUPTED: "INTERRUPTED"}.get(r.outcome, "FAIL")
    head = (f"    {word} [{r.wall_s:8.2f}s] {r.test_id} ktstr/{r.test_id.rsplit('::', 1)[-1]}"
            f" [topo={r.topology} accel={r.accel} boot={r.boot_s:.1f}s"
            f"{f' {r.boot_mode}' if r.boot_mode else ''}"
            f"{f' cpu_wait={r.cpu_wait_s:.1f}s' if r.cpu_wait_s > 0 else ''}]")
    if word in ("FAIL", "INTERRUPTED"):
        # The why first: the violated thresholds or the error, then the stats.
        body = "\n".join(filter(None, ["  " + r.error if r.error else "", r.report.rstrip()]))
    else:
        blocks = [r.report.find(b) for b in ("--- stats ---", "--- payloads ---")]
        i = min((j for j in blocks if j >= 0), default=-1)
        body = r.report[i:].rstrip() if i >= 0 else ""
    return head + ("\n" + body if body else "")


def failure_text(r: RunResult) -> str:
    name = r.test_id.rsplit("::", 1)[-1]
    lines = [f"ktstr_test '{name}' [topo={r.topology}] {_verb(r.outcome)}:"]
    if r.error:
        lines += ["  " + line for line in r.error.splitlines()]
    if r.report:  # the detail lines (indented) and the --- stats --- block
        lines += [r.report.rstrip()]
    if r.traceback:
        lines += ["", "--- guest traceback ---", r.traceback.rstrip()]
    if len(r.scheduler_runs) > 1:  # the steps switched schedulers: in which order
        lines += ["", "schedulers of the run: " + " -> ".join(
            f"{run.name} ({run.end or 'running'})" for run in r.scheduler_runs)]
    lines += scheduler_block(r.scheduler_run)
    if r.snapshots:  # what the scheduler's state was when the test asked
        lines += ["", "--- snapshots ---"] + ["  " + s.line() for s in r.snapshots.values()]
    if r.console_tail:
        lines += ["", f"--- guest console (tail; whole log: {r.console_log}) ---",
                  r.console_tail.rstrip()]
    lines += ["", f"kernel {r.kernel}, accel {r.accel}, profile {r.profile or '-'}, "
              f"sidecar {r.sidecar}"]
    return "\n".join(lines)


def scheduler_block(run: SchedulerRun | None) -> list[str]:
    """The scheduler's side of a failure: how it ended, its kernel log lines, its output."""
    if run is None or run.end in (SchedEnd.RUNNING, SchedEnd.CLEAN):
        return []
    lines = ["", f"--- scheduler {run.name} (ops {run.ops or '-'}, "
                 f"pid {run.pid or '-'}): {run.end} ---"]
    if run.reason:
        lines.append(f"  kernel: {run.reason}" + (f": {run.message}" if run.message else ""))
    lines += [f"  {line}" for line in run.kernel_log]
    if run.output_tail:
        lines += ["  scheduler output (tail):"]
        lines += [f"    {line}" for line in run.output_tail.splitlines()]
    if run.watchdog:
        lines.append(f"  {run.watchdog}")
    return lines


def _verb(outcome: Outcome) -> str:
    return {Outcome.TIMEOUT: "timed out", Outcome.CRASHED: "lost its guest",
            Outcome.ERROR: "could not run",
            Outcome.INTERRUPTED: "was interrupted"}.get(outcome, "failed")


class SummaryReporter:
    """Writes each ktstr test's summary line under pytest's own progress output."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props = dict(report.user_properties)
        text = props.get("ktstr_summary")
        if report.when != "call" or not text:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(str(text))
