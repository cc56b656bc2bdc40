"""`ktstr test --cold/--no-monitor` reach each run as parameters of run_in_vm, and the
KTSTR_COLD/KTSTR_MONITOR settings only supply their defaults. No VM boots: a conftest
in the test directory puts a recorder in run_in_vm's place."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_cache import add_kernel

RECORDER = '''
import json
import os

import ktstr.pytest_plugin.item as item
from ktstr.runner.vmrun import RunResult


def record(test, where, **options):
    with open(os.environ["RECORD_TO"], "w") as f:
        json.dump({"cold": options["cold"], "monitor": options["monitor"],
                   "env": os.environ.get("KTSTR_MONITOR")}, f)
    return RunResult(test_id=where.test_id, outcome="passed", topology="1n1l2c1t",
                     kernel="k", accel="tcg", scheduler="eevdf")


item.run_in_vm = record
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A cache with one (fake) kernel, and a test directory whose runs are recorded."""
    add_kernel(tmp_path / "cache" / "kernels")
    tests = tmp_path / "t"
    tests.mkdir()
    (tests / "conftest.py").write_text(RECORDER)
    (tests / "test_one.py").write_text("from ktstr import ktstr_test\n\n"
                                       "@ktstr_test()\ndef one(ctx):\n    pass\n")
    return tmp_path


def ktstr_test(project: Path, *args: str, **env: str) -> dict[str, object]:
    record = project / "record.json"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KTSTR_")}
    environ.update(KTSTR_CACHE_DIR=str(project / "cache"), RECORD_TO=str(record), **env)
    out = subprocess.run([sys.executable, "-m", "ktstr.cli.main", "test", *args,
                          "-p", "no:cacheprovider", "--ktstr-run-dir", str(project / "runs"),
                          str(project / "t")], capture_output=True, text=True,
                         cwd=project, env=environ, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    recorded: dict[str, object] = json.loads(record.read_text())
    return recorded


def test_no_options_leave_the_defaults_to_the_settings(project):
    assert ktstr_test(project) == {"cold": None, "monitor": None, "env": None}


def test_no_monitor_and_cold_reach_the_run_as_parameters(project):
    got = ktstr_test(project, "--no-monitor", "--cold")
    assert got == {"cold": True, "monitor": False, "env": None}, "no environment written"


def test_the_environment_is_left_to_run_in_vm_as_the_default(project):
    assert ktstr_test(project, KTSTR_MONITOR="off") == {"cold": None, "monitor": None,
                                                         "env": "off"}


def test_a_bad_setting_is_a_usage_error_naming_it(project):
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--collect-only", "-q", str(project / "t")], capture_output=True,
                         text=True, cwd=project, timeout=60, check=False,
                         env={**os.environ, "KTSTR_TCG_THREADS": "many"})
    assert out.returncode == 4, out.stdout + out.stderr
    assert "KTSTR_TCG_THREADS='many' is not a TCG threading" in out.stderr
    assert "Traceback" not in out.stderr
