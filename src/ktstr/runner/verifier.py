"""The BPF verifier sweep: load every declared scheduler in a VM and report its programs.

Cells: one per scheduler x kernel-list entry that passes the scheduler's
`kernels` filter (ktstr.kernelid) x topology. EEVDF and kernel built-ins have no
binary to load BPF programs from and are left out. The topology is the scheduler's
own unless the operator names some (`--topo`); the gauntlet's presets
(ktstr.gauntlet) are for tests, not for this sweep.

Each cell is an ordinary test run (`run_in_vm` of the probe body in
ktstr.runner.verifier_probe under that scheduler): the guest agent starts the
scheduler, and once sched_ext has enabled it, reads the process's BPF programs
(`verified_insns` from the kernel's `bpf_prog_info`, cross-checked with fdinfo). A
scheduler that cannot load fails as "never attached", and its output (libbpf prints
the verifier's log there) gives the excerpt. A scheduler with `config_file_def` is
loaded without its config argument: the sweep has no test content to write.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ktstr.errors import ConfigError
from ktstr.kernelid import KernelEntry, kernel_filter_accepts
from ktstr.protocol import SchedEnd, TestLocation
from ktstr.runner import verifier_probe
from ktstr.runner.sidecar import safe_name
from ktstr.runner.vmrun import RunResult, run_in_vm
from ktstr.scheduler import Scheduler
from ktstr.topology import Topology

#: How many lines of a failed scheduler's output the report keeps.
EXCERPT_LINES = 20
_LOG_BEGIN = "-- BEGIN PROG LOAD LOG --"
_LOG_END = "-- END PROG LOAD LOG --"


@dataclass(frozen=True, slots=True)
class Cell:
    scheduler: Scheduler
    entry: KernelEntry
    topology: Topology

    @property
    def cell_id(self) -> str:
        return f"verifier/{self.scheduler.name}/{self.entry.label}/{self.topology}"


@dataclass
class CellResult:
    cell: Cell
    passed: bool
    programs: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""  # why it failed, one line
    excerpt: str = ""  # the verifier's log or the scheduler's output, for a failed load
    run: RunResult | None = None


def verifiable(sched: Scheduler) -> bool:
    """EEVDF and kernel built-ins have no userspace binary to verify."""
    return sched.spec.kind not in ("eevdf", "kernel_builtin")


def sweep_cells(schedulers: Iterable[Scheduler], entries: Sequence[KernelEntry],
                topologies: Sequence[Topology] = ()) -> list[Cell]:
    """Every cell of the sweep, in scheduler, kernel, topology order."""
    cells = []
    for sched in schedulers:
        if not verifiable(sched):
            continue
        for entry in entries:
            if not kernel_filter_accepts(sched.kernels, entry):
                continue
            for topo in topologies or (Topology(*sched.topology),):
                cells.append(Cell(sched, entry, topo))
    return cells


def select(schedulers: Iterable[Scheduler], names: Sequence[str]) -> list[Scheduler]:
    """The schedulers named in `names` (all without names); ConfigError for a name that
    is not declared, listing those that are."""
    scheds = list(schedulers)
    if not names:
        return scheds
    known = {s.name for s in scheds}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(f"no declared scheduler named {', '.join(missing)} (declared: "
                          f"{', '.join(sorted(known)) or 'none'}); hint: -k takes a "
                          "scheduler's name, as `ktstr verifier` lists them")
    return [s for s in scheds if s.name in names]


def verifier_excerpt(output: str, max_lines: int = EXCERPT_LINES) -> str:
    """The part of a scheduler's output that says why its programs did not load: the end
    of libbpf's `PROG LOAD LOG` block and what follows it, else the output's tail."""
    lines = output.rstrip().splitlines()
    ends = [i for i, line in enumerate(lines) if _LOG_END in line]
    if ends:
        begin = max((i for i, line in enumerate(lines[:ends[-1]]) if _LOG_BEGIN in line),
                    default=0)
        block = lines[begin:ends[-1] + 1]
        after = lines[ends[-1] + 1:][:5]
        return "\n".join([*block[-max_lines:], *after])
    return "\n".join(lines[-max_lines:])


def judge(cell: Cell, res: RunResult) -> CellResult:
    """A cell's verdict from its run: passed when the scheduler attached, stayed, and
    every program it holds was verified (verified_insns > 0)."""
    run = res.scheduler_run
    if run is None:
        out = CellResult(cell, passed=False, run=res)
        out.error = res.error or f"the run ended {res.outcome} without a scheduler report"
        out.excerpt = res.console_tail[-2000:] if res.console_tail else ""
        return out
    programs = [p for p in run.programs if "id" in p]
    out = CellResult(cell, passed=False, programs=programs, run=res)
    if run.end == SchedEnd.NEVER or not run.ops:
        out.error = f"did not load: {run.message or run.reason or res.error}"
        out.excerpt = verifier_excerpt(run.output_tail)
        return out
    problems = [p["error"] for p in run.programs if "error" in p]
    if not programs:
        problems.append("the scheduler attached but holds no BPF program")
    problems += [f"program {p.get('name') or p['id']} has verified_insns="
                 f"{p.get('verified_insns')}" for p in programs
                 if not p.get("verified_insns")]
    if not res.passed:
        problems.insert(0, res.error or f"the run ended {res.outcome}")
        out.excerpt = verifier_excerpt(run.output_tail)
    out.error = "; ".join(problems)
    out.passed = not problems
    return out


def verify_cell(cell: Cell, run_dir: Path, *, cold: bool = False) -> CellResult:
    """Boot one VM for `cell`, load its scheduler and judge what the verifier said."""
    probe = verifier_probe.verifier_probe
    test = replace(probe, name=cell.cell_id, scheduler=cell.scheduler,
                   topology=cell.topology, extra_sched_args=(), config=None)
    where = TestLocation(test_id=cell.cell_id, module_file=verifier_probe.__file__,
                         module_name=verifier_probe.__name__, qualname="verifier_probe",
                         cwd=os.getcwd())
    res = run_in_vm(test, where, kernel_spec=cell.entry.kernel.key,
                    run_dir=run_dir / safe_name(cell.entry.label), cold=cold, replaced=True)
    return judge(cell, res)
