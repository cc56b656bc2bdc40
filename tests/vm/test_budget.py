"""`--gauntlet --budget 8` end to end, under `-n 2`: a tiny test whose constraints
(max_cpus=4) admit two presets has three runs (its own and two variants) estimated at
3.6 s each (docs/gauntlet.md's table, no earlier sidecars); the budget keeps the two
that cover the most, and those two, not the third, run and leave sidecars. The
controller's summary (the workers collected) names what was chosen, what was left out
and why, and the estimated against the actual time of both workers' runs, once."""

import json
import re
from pathlib import Path

TINY = '''from ktstr import ktstr_test


@ktstr_test(max_llcs=3, max_cpus=4, memory_mb=256, duration_s=0.5)
def tiny(ctx):
    pass
'''


def test_a_budget_runs_the_subset_it_chose_and_says_what_it_left_out_and_why(
        tmp_path: Path, run_pytest) -> None:
    runs = tmp_path / "runs"
    out = run_pytest("test_tiny.py", TINY, "-n", "2", "--gauntlet", "--budget", "8",
                     timeout=1500)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "2 workers [2 items]" in text and "2 passed" in text, text
    lines = text.splitlines()
    # tiny (1n1l2c1t) brings its test, the 2-CPU bucket, 1 LLC; tiny-2llc 2 LLCs and
    # the 4-CPU bucket; tiny-1llc would add nothing new for its 3.6 s.
    said = [x for x in lines if x.startswith("budget")]
    assert said[:4] == [
        "budget 8: chose 2 of 3 runs, estimated 7.2 s of 8 s (estimates from "
        "docs/gauntlet.md's table)",
        "budget: chose test_tiny.py::tiny (~3.6 s)",
        "budget: chose test_tiny.py::tiny[gauntlet/tiny-2llc] (~3.6 s)",
        "budget: left out test_tiny.py::tiny[gauntlet/tiny-1llc] (~3.6 s): over budget",
    ], text
    assert len(said) == 5 and re.fullmatch(
        r"budget: estimated 7\.2 s, actual [0-9.]+ s for 2 runs", said[4]), said
    actual = float(said[4].split("actual ")[1].split(" s")[0])
    sidecars = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    ran = {s["test_id"]: s for s in sidecars}
    assert sorted(ran) == ["test_tiny.py::tiny", "test_tiny.py::tiny[gauntlet/tiny-2llc]"]
    assert all(s["outcome"] == "passed" for s in ran.values()), ran
    assert ran["test_tiny.py::tiny[gauntlet/tiny-2llc]"]["topology"] == "1n2l2c1t"
    # the actual time is the chosen runs' pytest time, so at least their VMs' wall times
    assert actual >= sum(s["wall_s"] for s in ran.values()) - 0.5, (actual, ran)
