"""`ktstr test --shard K/N` through the real entry point on a mixed collection (ktstr tests
and plain pytest functions): the shards are disjoint and their union is the whole
collection, the rest is reported deselected, bad values are usage errors. No VM boots:
the cache holds a fake kernel and a conftest puts a stub in run_in_vm's place."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_cache import add_kernel

from ktstr.pytest_plugin.shard import hash_bin
from ktstr.runner.sidecar import SCHEMA, safe_name, write_json_atomic

STUB = '''
import ktstr.pytest_plugin.item as item
from ktstr.runner.vmrun import RunResult


def passed(test, where, **options):
    return RunResult(test_id=where.test_id, outcome="passed", topology="1n1l2c1t",
                     kernel="k", accel="tcg", scheduler="eevdf")


item.run_in_vm = passed
'''

KTSTR_TESTS = ["cpu_bound", "io_bound", "mixed", "pinned", "starved"]
PLAIN_TESTS = ["test_parse", "test_format", "test_merge", "test_split"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    add_kernel(tmp_path / "cache" / "kernels")
    tests = tmp_path / "t"
    tests.mkdir()
    (tests / "conftest.py").write_text(STUB)
    (tests / "test_mixed.py").write_text("from ktstr import ktstr_test\n" + "".join(
        f"\n\n@ktstr_test()\ndef {name}(ctx):\n    pass\n" for name in KTSTR_TESTS) + "".join(
        f"\n\ndef {name}():\n    pass\n" for name in PLAIN_TESTS))
    return tmp_path


def ktstr_test(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KTSTR_")}
    environ.update(KTSTR_CACHE_DIR=str(project / "cache"))
    return subprocess.run([sys.executable, "-m", "ktstr.cli.main", "test", *args,
                           "-p", "no:cacheprovider", "--ktstr-run-dir", str(project / "runs"),
                           str(project / "t")], capture_output=True, text=True,
                          cwd=project, env=environ, timeout=120, check=False)


def collected(project: Path, *args: str) -> list[str]:
    out = ktstr_test(project, "--collect-only", "-q", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return [line for line in out.stdout.splitlines() if "::" in line]


ALL = [f"t/test_mixed.py::{name}" for name in KTSTR_TESTS + PLAIN_TESTS]


@pytest.mark.parametrize("n", [2, 3])
def test_shards_are_disjoint_and_cover_the_collection(project, n):
    assert sorted(collected(project)) == sorted(ALL)
    parts = [collected(project, "--shard", f"{k}/{n}") for k in range(1, n + 1)]
    assert sorted(i for part in parts for i in part) == sorted(ALL)  # each exactly once
    assert collected(project, "--shard", f"1/{n}") == parts[0], "the same slice again"


def test_a_shard_runs_its_slice_and_says_so(project):
    out = ktstr_test(project, "--shard", "1/2")
    assert out.returncode == 0, out.stdout + out.stderr
    kept = collected(project, "--shard", "1/2")
    assert 0 < len(kept) < len(ALL)
    assert f"shard 1/2: {len(kept)} of {len(ALL)} items (by node-id hash)" in out.stdout
    assert f"{len(kept)} passed, {len(ALL) - len(kept)} deselected" in out.stdout


def test_a_shard_with_nothing_to_run_is_not_a_failure(project):
    used = {hash_bin(i, 20) for i in ALL}
    k = min(set(range(20)) - used) + 1  # 9 items in 20 shards: some shard is empty
    out = ktstr_test(project, "--shard", f"{k}/20")
    assert out.returncode == 0, out.stdout + out.stderr  # not pytest's 5: no tests
    assert f"shard {k}/20: 0 of {len(ALL)} items" in out.stdout


def test_shards_balanced_by_the_durations_of_an_earlier_run(project):
    earlier = project / "earlier"
    walls = {"cpu_bound": 100.0, "io_bound": 60.0, "mixed": 50.0, "pinned": 45.0}
    for name, wall in walls.items():  # "starved" has no sidecar: the median (55 s)
        test_id = f"t/test_mixed.py::{name}"
        write_json_atomic(earlier / f"{safe_name(test_id)}.json",
                          {"schema": SCHEMA, "test_id": test_id, "outcome": "passed",
                           "wall_s": wall})
    parts = [collected(project, "--shard", f"{k}/2", "--shard-durations", str(earlier))
             for k in (1, 2)]
    assert sorted(parts[0] + parts[1]) == sorted(ALL)
    ktstr = [[i.split("::")[1] for i in part if i.split("::")[1] in KTSTR_TESTS]
             for part in parts]
    # longest first: cpu_bound 100 -> 1; io_bound 60 -> 2; starved 55 -> 2 (60 < 100);
    # mixed 50 -> 1 (100 < 115); pinned 45 -> 2 (115 < 150)
    assert ktstr == [["cpu_bound", "mixed"], ["io_bound", "pinned", "starved"]]
    out = ktstr_test(project, "--collect-only", "-q", "--shard", "2/2",
                     "--shard-durations", str(earlier))
    assert (f"shard 2/2: {len(parts[1])} of {len(ALL)} items (balanced by the durations "
            f"of 4 recorded tests in {earlier})") in out.stdout


@pytest.mark.parametrize("value", ["0/2", "3/2", "1/0", "a/b"])
def test_a_bad_shard_is_a_usage_error_naming_it(project, value):
    out = ktstr_test(project, "--collect-only", "--shard", value)
    assert out.returncode == 4, out.stdout + out.stderr  # pytest's usage error
    assert out.stderr.strip() == (f"ERROR: --shard '{value}': expected K/N with "
                                  "1 <= K <= N (e.g. --shard 2/4)")


def test_durations_need_a_directory_and_a_shard(project):
    out = ktstr_test(project, "--collect-only", "--shard", "1/2",
                     "--shard-durations", str(project / "nope"))
    assert out.returncode == 4 and f"--shard-durations {project / 'nope'}: not a " \
        "directory" in out.stderr
    out = ktstr_test(project, "--collect-only", "--shard-durations", str(project))
    assert out.returncode == 4 and "--shard-durations is used only with --shard" in out.stderr
