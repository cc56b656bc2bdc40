"""Every public cgroup op, proved from the kernel's side in a guest (ops_bodies.py)."""

from pathlib import Path

from tests.vm import ops_bodies


def figures(r) -> None:
    """Show what the guest measured (its `ops figures` log lines) in pytest's output."""
    for line in Path(r.console_log).read_text(errors="replace").splitlines():
        if "ops figures" in line:
            print(line)


def test_lifecycle_and_cpuset_ops_show_in_the_cgroup_files(run_vm):
    r = run_vm(ops_bodies, "ops_cgroup_lifecycle_and_cpusets")
    figures(r)
    assert r.outcome == "passed", r.error + r.report


def test_freeze_move_and_capture_ops_on_a_backdrop(run_vm):
    r = run_vm(ops_bodies, "ops_freeze_move_capture_on_backdrop")
    figures(r)
    assert r.outcome == "passed", r.error + r.report


def test_spawn_diverse_gives_each_cgroup_its_work_type(run_vm):
    r = run_vm(ops_bodies, "spawn_diverse_rotates_work_types")
    assert r.outcome == "passed", r.error + r.report
