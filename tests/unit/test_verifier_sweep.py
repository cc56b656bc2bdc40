"""The verifier sweep's pure parts: which cells, how a run is judged, the log excerpt."""

from pathlib import Path

import pytest

from ktstr.errors import ConfigError
from ktstr.kernelid import KernelEntry
from ktstr.protocol import Outcome, SchedulerRun
from ktstr.runner.verifier import Cell, judge, select, sweep_cells, verifier_excerpt
from ktstr.runner.vmrun import RunResult
from ktstr.scheduler import Scheduler, SchedulerSpec
from ktstr.topology import Topology
from ktstr.vm.kernel import Kernel


def kernel(version: str) -> KernelEntry:
    k = Kernel(key=version, version=version, image=Path("/k"), config=None, modules_dir=None,
               vmlinux=None)
    return KernelEntry(version, k)


K72, K614 = kernel("7.2.13+deb14-amd64"), kernel("6.14.2-amd64")
SIMPLE = Scheduler("scx_simple")
OLD_ONLY = Scheduler("scx_old", kernels=("6.14",), topology=(1, 2, 2, 1))
BUILTIN = Scheduler("minlat", binary=SchedulerSpec.kernel_builtin(["echo minlat > x"]))


def test_cells_skip_eevdf_and_builtins_and_follow_each_kernels_filter():
    cells = sweep_cells([Scheduler.EEVDF, BUILTIN, SIMPLE, OLD_ONLY], [K72, K614])
    assert [(c.scheduler.name, c.entry.raw, str(c.topology)) for c in cells] == [
        ("scx_simple", K72.raw, "1n1l2c1t"), ("scx_simple", K614.raw, "1n1l2c1t"),
        ("scx_old", K614.raw, "1n2l2c1t")]


def test_operator_topologies_replace_the_schedulers_own():
    topos = [Topology.parse("1n1l2c1t"), Topology.parse("1n2l2c2t")]
    cells = sweep_cells([SIMPLE], [K72], topos)
    assert [str(c.topology) for c in cells] == ["1n1l2c1t", "1n2l2c2t"]


def test_select_by_name_and_unknown_names_are_config_errors():
    assert select([SIMPLE, OLD_ONLY], ["scx_old"]) == [OLD_ONLY]
    assert select([SIMPLE, OLD_ONLY], []) == [SIMPLE, OLD_ONLY]
    with pytest.raises(ConfigError, match=r"no declared scheduler named scx_x \(declared: "
                       r"scx_old, scx_simple\)"):
        select([SIMPLE, OLD_ONLY], ["scx_x"])


LIBBPF_FAILURE = """\
libbpf: prog 'simple_enqueue': BPF program load failed: Permission denied
libbpf: prog 'simple_enqueue': -- BEGIN PROG LOAD LOG --
0: R1=ctx() R10=fp0
0: (bf) r6 = r9
R9 !read_ok
processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0
-- END PROG LOAD LOG --
libbpf: prog 'simple_enqueue': failed to load: -13
libbpf: failed to load object 'scx_simple'
"""


def test_the_excerpt_is_the_prog_load_log_and_what_follows():
    text = "starting\n" * 50 + LIBBPF_FAILURE
    ex = verifier_excerpt(text)
    assert ex.splitlines()[0].endswith("-- BEGIN PROG LOAD LOG --")
    assert "R9 !read_ok" in ex and "failed to load object" in ex
    assert "starting" not in ex


def test_a_long_log_keeps_its_end():
    text = "-- BEGIN PROG LOAD LOG --\n" + "".join(f"{i}: insn\n" for i in range(100)) + \
        "R3 invalid mem access 'scalar'\n-- END PROG LOAD LOG --\n"
    ex = verifier_excerpt(text, max_lines=5).splitlines()
    assert ex[-2:] == ["R3 invalid mem access 'scalar'", "-- END PROG LOAD LOG --"]
    assert len(ex) == 5


def test_without_a_log_the_excerpt_is_the_outputs_tail():
    assert verifier_excerpt("a\nb\nc\n", max_lines=2) == "b\nc"


def result(outcome: str, run: dict | None, error: str = "") -> RunResult:
    """A run's result as the guest reported its scheduler (a SchedulerRun's fields)."""
    sched = None if run is None else SchedulerRun.from_dict({"name": "scx_simple", **run})
    return RunResult(test_id="t", outcome=Outcome(outcome), topology="1n1l2c1t", kernel="k",
                     accel="tcg", scheduler="scx_simple", error=error, scheduler_run=sched)


CELL = Cell(SIMPLE, K72, Topology.parse("1n1l2c1t"))
PROG = {"id": 7, "name": "simple_enqueue", "type": "struct_ops", "verified_insns": 42,
        "fdinfo_verified_insns": 42}


def test_a_run_that_attached_with_verified_programs_passes():
    r = judge(CELL, result("passed", {"ops": "simple", "end": "clean", "programs": [PROG]}))
    assert r.passed and r.programs == [PROG] and not r.error


def test_a_scheduler_that_never_attached_fails_with_the_verifier_log():
    run = {"ops": "", "end": "never attached", "message": "sched_ext state 'disabled'",
           "output_tail": LIBBPF_FAILURE, "programs": []}
    r = judge(CELL, result("failed", run, "scheduler scx_simple never attached"))
    assert not r.passed
    assert r.error.startswith("did not load: sched_ext state 'disabled'")
    assert "R9 !read_ok" in r.excerpt


def test_an_attached_scheduler_without_programs_or_insns_fails():
    r = judge(CELL, result("passed", {"ops": "simple", "end": "clean", "programs": []}))
    assert not r.passed and "holds no BPF program" in r.error
    zero = {**PROG, "verified_insns": 0}
    r = judge(CELL, result("passed", {"ops": "simple", "end": "clean", "programs": [zero]}))
    assert not r.passed and "simple_enqueue has verified_insns=0" in r.error


def test_a_run_without_a_scheduler_report_fails_with_the_runs_error():
    r = judge(CELL, result("crashed", None, "the guest died before sending a result"))
    assert not r.passed and r.error == "the guest died before sending a result"


def test_a_scheduler_that_died_after_attaching_fails_with_its_output():
    run = {"ops": "simple", "end": "crash", "programs": [PROG], "output_tail": "segfault"}
    r = judge(CELL, result("failed", run, "scheduler scx_simple crash"))
    assert not r.passed and r.error.startswith("scheduler scx_simple crash")
    assert r.excerpt == "segfault"
