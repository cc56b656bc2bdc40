"""`ktstr test --gauntlet [--max-cpus N]`: which items are collected, under which ids, what
the summary says of the variants left out, and what a variant's run is given. No VM
boots: `--collect-only`, or a recorder in run_in_vm's place (as test_test_cmd_options)."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.cli.test_test_cmd_options import project  # noqa: F401  (a fixture)

from ktstr.gauntlet import TCG_MAX_CPUS

RECORDER = '''
import json
import os

import ktstr.pytest_plugin.item as item
from ktstr.runner.vmrun import RunResult


def record(test, where, **options):
    with open(os.environ["RECORD_TO"], "a") as f:
        f.write(json.dumps({"id": where.test_id, "qualname": where.qualname,
                            "topology": str(test.topology), "memory_mb": test.memory_mb,
                            "replaced": options["replaced"]}) + "\\n")
    return RunResult(test_id=where.test_id, outcome="passed", topology=str(test.topology),
                     kernel="k", accel="tcg", scheduler="eevdf")


item.run_in_vm = record
'''

TESTS = '''from ktstr import ktstr_test


@ktstr_test(max_llcs=3, memory_mb=256)
def small(ctx):
    pass


@ktstr_test(min_numa_nodes=2, max_numa_nodes=2, max_cpus=16)
def two_nodes(ctx):
    pass
'''


def run(project: Path, *args: str,  # noqa: F811
        tests: str = TESTS, status: int = 0) -> subprocess.CompletedProcess[str]:
    (project / "t" / "conftest.py").write_text(RECORDER)
    (project / "t" / "test_one.py").write_text(tests)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KTSTR_")}
    environ.update(KTSTR_CACHE_DIR=str(project / "cache"), KTSTR_ACCEL="tcg",
                   RECORD_TO=str(project / "record.jsonl"))
    out = subprocess.run([sys.executable, "-m", "ktstr.cli.main", "test", *args,
                          "-p", "no:cacheprovider", "--ktstr-run-dir", str(project / "runs"),
                          str(project / "t")], capture_output=True, text=True,
                         cwd=project, env=environ, timeout=120, check=False)
    assert out.returncode == status, out.stdout + out.stderr
    return out


def ids(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split("::", 1)[1] for line in out.stdout.splitlines() if "::" in line]


def test_without_gauntlet_only_the_tests_own_variants_are_collected(project):  # noqa: F811
    out = run(project, "--collect-only", "-q")
    assert ids(out) == ["small", "two_nodes"]
    assert "gauntlet" not in out.stdout


def test_gauntlet_collects_one_item_per_admitted_preset_and_names_the_left_out(
        project):  # noqa: F811
    out = run(project, "--gauntlet", "--max-cpus", "8", "--collect-only", "-q")
    assert ids(out) == ["small", "small[gauntlet/tiny-1llc]", "small[gauntlet/tiny-2llc]",
                        "small[gauntlet/smt-2llc]", "two_nodes"]
    assert ("gauntlet: 3 variants left out: over --max-cpus 8 (numa2-4llc 16 cpus, "
            "smt-3llc 12 cpus, odd-3llc 9 cpus)") in out.stdout.splitlines()
    out = run(project, "--gauntlet", "--max-cpus", "16", "--collect-only", "-q")
    assert "two_nodes[gauntlet/numa2-4llc]" in ids(out)
    assert "left out" not in out.stdout


def test_the_default_ceiling_under_emulation_is_said_with_its_source(project):  # noqa: F811
    big = ("from ktstr import ktstr_test\n\n"
           f"@ktstr_test(min_cpus={TCG_MAX_CPUS + 1}, max_cpus=32)\ndef big(ctx):\n    pass\n")
    out = run(project, "--gauntlet", "--collect-only", "-q", tests=big)
    assert ids(out) == ["big"]
    line = next(x for x in out.stdout.splitlines() if x.startswith("gauntlet:"))
    assert line.startswith(f"gauntlet: 2 variants left out: over the emulation default "
                           f"--max-cpus {TCG_MAX_CPUS} (")


def test_k_and_junit_name_a_preset_and_its_run_gets_the_preset_as_an_override(
        project):  # noqa: F811
    junit = project / "junit.xml"
    run(project, "--gauntlet", "--max-cpus", "8", "-k", "smt-2llc or (small and not gauntlet)",
        f"--junitxml={junit}")
    names = [case.get("name") for case in ET.parse(junit).iter("testcase")]
    assert names == ["small", "small[gauntlet/smt-2llc]"]
    runs = [json.loads(line) for line in (project / "record.jsonl").read_text().splitlines()]
    assert [(r["id"].split("::", 1)[1], r["qualname"], r["topology"], r["memory_mb"],
             r["replaced"]) for r in runs] == [
        ("small", "small", "1n1l2c1t", 256, False),
        ("small[gauntlet/smt-2llc]", "small", "1n2l2c2t", 512, True)]


def test_max_cpus_without_gauntlet_or_below_one_is_a_usage_error(project):  # noqa: F811
    out = run(project, "--max-cpus", "4", "--collect-only", status=4)
    assert ("--max-cpus 4 caps the gauntlet's presets and --gauntlet is not given; "
            "hint: add --gauntlet") in out.stderr
    out = run(project, "--gauntlet", "--max-cpus", "0", "--collect-only", status=4)
    assert "--max-cpus 0 is not a positive integer; hint: e.g. --max-cpus 4" in out.stderr


def test_a_performance_mode_test_leaves_out_presets_with_more_vcpu_threads_than_host_cpus(
        project):  # noqa: F811
    """Each vCPU thread of a performance_mode VM needs a host CPU of its own: under EEVDF
    (a thread per vCPU) the presets over the host's CPUs are left out at collection, with
    their own reason, while an ordinary test keeps them."""
    tests = ("from ktstr import ktstr_test\n\n"
             "@ktstr_test(max_llcs=3, memory_mb=256, performance_mode=True)\n"
             "def fast(ctx):\n    pass\n\n"
             "@ktstr_test(max_llcs=3, memory_mb=256)\ndef plain(ctx):\n    pass\n")
    out = run(project, "--gauntlet", "--max-cpus", "8", "--collect-only", "-q", tests=tests)
    host = len(os.sched_getaffinity(0))
    admitted = {"tiny-1llc": 4, "tiny-2llc": 4, "odd-3llc": 9, "smt-2llc": 8, "smt-3llc": 12}
    under_8 = [p for p, cpus in admitted.items() if cpus <= 8]
    fast = [p for p in under_8 if admitted[p] <= host]
    assert ids(out) == ["fast", *(f"fast[gauntlet/{p}]" for p in fast),
                        "plain", *(f"plain[gauntlet/{p}]" for p in under_8)]
    lines = out.stdout.splitlines()
    assert ("gauntlet: 2 variants left out: over --max-cpus 8 (smt-3llc 12 cpus, odd-3llc 9 "
            "cpus)") in lines  # plain's
    over = sorted((p for p in admitted if admitted[p] > min(host, 8)),
                  key=lambda p: (-admitted[p], p))
    if host < 8:  # fast's, all of them under their own reason
        assert (f"gauntlet: {len(over)} variants left out: over performance_mode's host "
                f"CPU per vCPU thread (this host has {host}) ("
                + ", ".join(f"{p} {admitted[p]} cpus" for p in over) + ")") in lines
