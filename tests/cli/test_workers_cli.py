"""`ktstr test -n 2`: the summary says what the workers' collection decided (the
gauntlet's variants left out, the budget's choice and its time, the shard's slice),
once, exactly as a serial run's does; an empty shard is no failure under -n either;
a SIGTERM to the controller alone reaches the workers at once. No VM boots: a
recorder in run_in_vm's place (as tests/cli/test_gauntlet_cli.py), or plain tests."""

import os
import re
import signal
import subprocess
import sys
import time

from tests.cli.test_budget_cli import GAUNTLET
from tests.cli.test_gauntlet_cli import run
from tests.cli.test_test_cmd_options import project  # noqa: F401  (a fixture)

from ktstr.pytest_plugin.shard import hash_bin

SAID = ("shard ", "budget", "gauntlet: ")


def summary(out: subprocess.CompletedProcess[str]) -> list[str]:
    """The ktstr lines of the terminal summary, the measured time blanked."""
    return [re.sub(r"actual [0-9.]+ s", "actual T s", line)
            for line in out.stdout.splitlines() if line.startswith(SAID)]


def test_the_summary_under_n_2_is_the_serial_one_said_once(project):  # noqa: F811
    options = (*GAUNTLET, "--budget", "10", "--shard", "1/1")
    serial = run(project, *options)
    parallel = run(project, *options, "-n", "2")
    assert "2 workers [2 items]" in parallel.stdout and "2 passed" in parallel.stdout
    assert summary(parallel) == summary(serial), parallel.stdout
    lines = summary(serial)
    assert lines[0] == "shard 1/1: 2 of 2 items (by node-id hash)"
    assert lines[1].startswith("budget 10: chose 2 of 5 runs")
    assert "budget: left out t/test_one.py::two_nodes (~3.6 s): over budget" in lines
    assert "budget: estimated 7.2 s, actual T s for 2 runs" in lines  # both workers' runs
    assert lines[-1].startswith("gauntlet: 3 variants left out: over --max-cpus 8 (")
    assert len(lines) == len(set(lines)), "a line said more than once"


def test_an_empty_shard_under_n_2_passes_and_says_so(project):  # noqa: F811
    items = ["small", "two_nodes"]
    used = {hash_bin(f"t/test_one.py::{name}", 9) for name in items}
    k = min(set(range(9)) - used) + 1
    out = run(project, "--shard", f"{k}/9", "-n", "2")  # status 0, not pytest's 5
    assert summary(out) == [f"shard {k}/9: 0 of 2 items (by node-id hash)"], out.stdout


WAITERS = """
import os
import time

import pytest


@pytest.mark.parametrize("n", [1, 2])
def test_waits(n):
    here = os.path.dirname(__file__)
    open(os.path.join(here, f"started-{n}"), "w").close()
    try:
        time.sleep(120)
    except KeyboardInterrupt as e:
        with open(os.path.join(here, f"stopped-{n}"), "w") as f:
            f.write(str(e))
        raise
"""


def test_a_sigterm_to_the_controller_alone_stops_every_worker_at_once(tmp_path):
    """Without the controller passing it on, the workers would learn of it from
    pytest-xdist's teardown 5 s later, as a SIGINT."""
    (tmp_path / "test_wait.py").write_text(WAITERS)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "-n", "2", "--ktstr-run-dir", str(tmp_path / "runs"),
                             str(tmp_path / "test_wait.py")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"started-{n}").exists() for n in (1, 2)):
            assert time.monotonic() < deadline and proc.poll() is None, "never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)  # the controller, not its process group
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 2, out  # interrupted
    for n in (1, 2):
        assert (tmp_path / f"stopped-{n}").read_text() == "interrupted by SIGTERM", out
    try:
        os.killpg(proc.pid, 0)
        raise AssertionError("a worker outlived the run")
    except ProcessLookupError:
        pass
