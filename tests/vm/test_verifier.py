"""`ktstr verifier` end to end: real VMs, the real scx_simple, and a real verifier rejection."""

import json
import textwrap

from ktstr.cli import main as cli_main
from ktstr.scheduler import SchedulerSpec
from ktstr.vm.kernel import resolve_kernel
from ktstr.vm.sched import find_scheduler_binary
from tests.vm.broken_sched import make_broken_simple


def test_verifier_reports_simples_programs_and_a_rejected_scheduler_with_its_log(
        tmp_path, request, capsys):
    spec = request.config.getoption("ktstr_kernel", None)
    simple = find_scheduler_binary(SchedulerSpec.discover("scx_simple"), resolve_kernel(spec))
    broken = make_broken_simple(simple, tmp_path / "scx_simple_broken")
    decls = tmp_path / "scheds.py"
    decls.write_text(textwrap.dedent(f"""
        from ktstr import declare_scheduler
        declare_scheduler("scx_simple_broken", binary={str(broken)!r})
    """))
    run_dir = tmp_path / "run"
    argv = ["verifier", str(decls), "--examples", "-k", "scx_simple", "-k",
            "scx_simple_broken", "--run-dir", str(run_dir),
            *(["--kernel", spec] if spec else [])]
    code = cli_main.main(argv)
    out = capsys.readouterr().out
    assert code == 1, out  # the broken one fails the sweep
    assert "1 passed, 1 failed" in out, out
    # scx_simple: every struct_ops program listed with a positive instruction count.
    sidecar = next(p for p in run_dir.rglob("verifier_scx_simple_*.json")
                   if "broken" not in p.name)
    progs = json.loads(sidecar.read_text())["scheduler_run"]["programs"]
    names = {p["name"] for p in progs}
    # Full names (the kernel keeps 15 characters; the rest comes from the program's BTF).
    assert {"simple_select_cpu", "simple_enqueue", "simple_dispatch", "simple_init"} <= names
    for p in progs:
        assert p["type"] == "struct_ops" and p["verified_insns"] > 0, p
        # Two independent sources: bpf_prog_info and the process's fdinfo agree.
        assert p["fdinfo_verified_insns"] == p["verified_insns"], p
        assert p["name"] in out
    # The broken copy: reported as failed with the verifier's own words.
    assert "verifier/scx_simple_broken/" in out and "did not load" in out, out
    assert "R9 !read_ok" in out, out
    assert "PROG LOAD LOG" in out, out
