"""`ktstr test` refuses bad input before pytest collects anything or a VM boots."""

import subprocess
import sys
from pathlib import Path

KTSTR = [sys.executable, "-m", "ktstr.cli.main"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KTSTR, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, check=False)


def test_unknown_kernel_is_named_before_anything_runs(tmp_path):
    out = run("test", "--kernel", "9.99-no-such-kernel", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert "9.99-no-such-kernel" in out.stderr
    assert out.stderr.startswith("ktstr: error:")
    assert "Traceback" not in out.stderr
    assert not (tmp_path / ".ktstr-runs").exists()


def test_invalid_test_attribute_fails_collection_naming_the_value(tmp_path):
    (tmp_path / "test_bad.py").write_text(
        "from ktstr import ktstr_test\n\n"
        "@ktstr_test(llcs=0)\n"
        "def bad(ctx):\n"
        "    pass\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60, check=False)
    assert out.returncode == 2  # collection error: nothing ran, no VM booted
    assert "@ktstr_test on bad: topology llcs=0 is invalid" in out.stdout
    assert not (tmp_path / ".ktstr-runs").exists()


def test_collection_finds_decorated_functions_whatever_their_name(tmp_path):
    (tmp_path / "test_names.py").write_text(
        "from ktstr import ktstr_test\n\n"
        "@ktstr_test(llcs=2, cores=2)\n"
        "def mixed_workloads(ctx):\n"
        "    pass\n\n"
        "def helper():\n"
        "    pass\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--collect-only", "-q", str(tmp_path)], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test_names.py::mixed_workloads" in out.stdout
    assert "helper" not in out.stdout


def test_pytest_marks_on_a_ktstr_test_reach_its_item(tmp_path):
    (tmp_path / "test_marked.py").write_text(
        "import pytest\nfrom ktstr import ktstr_test\n\n"
        "@pytest.mark.xfail(strict=True, reason='demo')\n"
        "@ktstr_test()\n"
        "def marked(ctx):\n"
        "    pass\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--collect-only", "-q", "-m", "xfail", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "test_marked.py::marked" in out.stdout


def test_shell_rejects_a_bad_topology_string_before_booting(tmp_path):
    out = run("shell", "--topo", "2n3x", "--exec", "true", cwd=tmp_path)
    assert out.returncode == 2
    assert "topology string '2n3x' is not of the form <n>n<l>l<c>c<t>t" in out.stderr


def test_shell_rejects_a_negative_disk_size_before_booting(tmp_path):
    out = run("shell", "--topo", "1n1l1c1t", "--disk-mb", "-1", "--exec", "true", cwd=tmp_path)
    assert out.returncode == 2
    assert "--disk-mb -1 is negative; hint: give a size in MiB, or 0 for no scratch disk" \
        in out.stderr
