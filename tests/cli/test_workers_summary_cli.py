"""`ktstr test -n 2`: the summary says what the workers' collection decided (the
gauntlet's variants left out, the budget's choice and its time, the shard's slice),
once, exactly as a serial run's does; an empty shard is no failure under -n either.
No VM boots: a recorder in run_in_vm's place (as tests/cli/test_gauntlet_cli.py)."""

import re
import subprocess

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
