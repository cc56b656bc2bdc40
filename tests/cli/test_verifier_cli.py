"""`ktstr verifier` through `ktstr.cli.main`, on a fake kernel cache. The VM run of each
cell is replaced by a recorder (the sweep's VM path is tests/vm/test_verifier.py)."""

import json
import textwrap

import pytest

from ktstr import scheduler as scheduler_mod
from ktstr.cli import main as cli_main
from ktstr.cli import verifier_cmd
from ktstr.runner.verifier import CellResult

KEY = "7.2.13+deb14-amd64"
NAMES = ["scx_simple", "scx_qmap", "scx_central", "scx_flatcg"]

PROG = {"id": 7, "name": "simple_enqueue", "type": "struct_ops", "verified_insns": 42}


def add_built_kernel(root):
    entry = root / KEY
    (entry / "sched").mkdir(parents=True)
    (entry / "vmlinuz").write_bytes(b"MZ")
    (entry / "config").write_text("CONFIG_SCHED_CLASS_EXT=y\n")
    (entry / "kernel.json").write_text(json.dumps({"key": KEY, "version": KEY}))
    for name in [*NAMES, "bpftool"]:
        (entry / "sched" / name).write_text("#!/bin/sh\n")
        (entry / "sched" / name).chmod(0o755)
    (entry / "sched" / "sched.json").write_text(json.dumps({
        "kernel": KEY, "schedulers": NAMES, "helpers": ["bpftool"]}))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "kernels"
    root.mkdir(parents=True)
    add_built_kernel(root)
    monkeypatch.setattr(scheduler_mod, "SCHEDULERS", {})
    monkeypatch.setattr(verifier_cmd, "SCHEDULERS", scheduler_mod.SCHEDULERS)
    return root


@pytest.fixture
def cells(monkeypatch):
    """Record the cells run; a scheduler named *broken* fails with a verifier log."""
    seen = []

    def fake(cell, run_dir, cold=False):
        seen.append(cell)
        if "broken" in cell.scheduler.name:
            return CellResult(cell, passed=False, error="did not load: never attached",
                              excerpt="-- BEGIN PROG LOAD LOG --\nR9 !read_ok\n"
                                      "-- END PROG LOAD LOG --")
        return CellResult(cell, passed=True, programs=[PROG])

    monkeypatch.setattr(verifier_cmd, "verify_cell", fake)
    return seen


def declarations(tmp_path, body):
    path = tmp_path / "scheds.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_without_sources_the_kernels_examples_are_swept(cache, cells, capsys, tmp_path):
    assert cli_main.main(["verifier", "--run-dir", str(tmp_path / "r")]) == 0
    assert [c.scheduler.name for c in cells] == NAMES
    assert {c.entry.label for c in cells} == {KEY}
    out = capsys.readouterr().out
    assert "simple_enqueue" in out and "struct_ops" in out and "42" in out
    assert "4 passed, 0 failed" in out


def test_k_picks_one_scheduler(cache, cells, tmp_path):
    assert cli_main.main(["verifier", "-k", "scx_simple", "--run-dir", str(tmp_path)]) == 0
    assert [c.scheduler.name for c in cells] == ["scx_simple"]


def test_declared_schedulers_come_from_the_sources_and_failures_exit_1(cache, cells, capsys,
                                                                        tmp_path):
    src = declarations(tmp_path, """
        from ktstr import declare_scheduler, SchedulerSpec
        declare_scheduler("scx_broken", binary="/opt/scx_broken")
        declare_scheduler("scx_new_only", binary="scx_simple", kernels=["8.0..=8.9"])
        declare_scheduler("minlat", binary=SchedulerSpec.kernel_builtin(["true"]))
    """)
    assert cli_main.main(["verifier", src, "--run-dir", str(tmp_path / "r")]) == 1
    # Built-ins are not verifiable; scx_new_only's kernels filter rejects 7.2.13.
    assert [c.scheduler.name for c in cells] == ["scx_broken"]
    out = capsys.readouterr().out
    assert "FAIL" in out and "R9 !read_ok" in out and "0 passed, 1 failed" in out


def test_examples_join_the_declared_ones_on_request(cache, cells, tmp_path):
    src = declarations(tmp_path, """
        from ktstr import declare_scheduler
        declare_scheduler("scx_mine", binary="/opt/scx_mine", topology=(1, 2, 2, 1))
    """)
    assert cli_main.main(["verifier", src, "--examples", "-k", "scx_mine", "-k", "scx_qmap",
                          "--run-dir", str(tmp_path / "r")]) == 0
    assert [(c.scheduler.name, str(c.topology)) for c in cells] == [
        ("scx_mine", "1n2l2c1t"), ("scx_qmap", "1n1l2c1t")]


def test_a_source_that_declares_nothing_is_a_usage_error(cache, cells, tmp_path, capsys):
    src = declarations(tmp_path, "X = 1\n")
    assert cli_main.main(["verifier", src]) == 2
    assert "declared no scheduler" in capsys.readouterr().err
    assert not cells


def test_an_unknown_name_is_a_usage_error_before_any_vm(cache, cells, capsys):
    assert cli_main.main(["verifier", "-k", "scx_nope"]) == 2
    err = capsys.readouterr().err
    assert "no declared scheduler named scx_nope" in err and "scx_simple" in err
    assert not cells


def test_a_missing_source_is_a_usage_error(cache, cells, capsys, tmp_path):
    assert cli_main.main(["verifier", str(tmp_path / "nope.py")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main.main(["verifier", "no_such_module_xyz"]) == 2
    assert "cannot import module 'no_such_module_xyz'" in capsys.readouterr().err


def test_topologies_from_the_command_line(cache, cells, tmp_path):
    assert cli_main.main(["verifier", "-k", "scx_simple", "--topo", "1n1l2c1t", "--topo",
                          "1n2l2c1t", "--run-dir", str(tmp_path)]) == 0
    assert [str(c.topology) for c in cells] == ["1n1l2c1t", "1n2l2c1t"]


def test_the_manifest_names_the_examples(cache):
    m = json.loads((cache / KEY / "sched" / "sched.json").read_text())
    assert m["schedulers"] == NAMES
