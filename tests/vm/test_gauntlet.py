"""`--gauntlet --max-cpus 4` end to end: a tiny test whose constraints admit five presets
runs on the two that fit under the ceiling, each under its own id, each guest seeing the
preset's topology, and the summary names the three left out. One pytest run in a
subprocess (the plugin as a user runs it), deselecting the test's own variant to keep
it to two short VMs."""

import json
from pathlib import Path

TINY = '''from ktstr import ktstr_test


@ktstr_test(max_llcs=3, max_cpus=12, memory_mb=256, duration_s=0.5)
def tiny(ctx):
    pass
'''


def test_gauntlet_runs_the_admitted_presets_under_the_ceiling_and_names_the_rest(
        tmp_path: Path, run_pytest) -> None:
    runs = tmp_path / "runs"
    out = run_pytest("test_tiny.py", TINY, "-q", "-rA", "--gauntlet", "--max-cpus", "4",
                     "-k", "gauntlet")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "2 passed, 1 deselected" in text, text
    assert ("gauntlet: 3 variants left out: over --max-cpus 4 (smt-3llc 12 cpus, "
            "odd-3llc 9 cpus, smt-2llc 8 cpus)") in text.splitlines(), text
    results = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    seen = {r["test_id"].split("::", 1)[1]: (r["outcome"], r["topology"], r["topology_seen"])
            for r in results}
    assert seen == {
        "tiny[gauntlet/tiny-1llc]": ("passed", "1n1l4c1t",
                                     {"online": "0-3", "llcs": ["0-3"], "nodes": {"0": "0-3"}}),
        "tiny[gauntlet/tiny-2llc]": ("passed", "1n2l2c1t",
                                     {"online": "0-3", "llcs": ["0-1", "2-3"],
                                      "nodes": {"0": "0-3"}}),
    }
