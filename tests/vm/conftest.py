"""VM tests boot real qemu guests with the cached kernel (`make test` fetches it)."""

import subprocess
import sys
from pathlib import Path

import pytest

from ktstr.runner.vmrun import RunResult, TestLocation, run_in_vm
from ktstr.settings import settings
from ktstr.testdef import KtstrTest


@pytest.fixture
def run_vm(tmp_path: Path, request: pytest.FixtureRequest):
    """Run a KtstrTest defined at module level of `module` in a VM; return its RunResult.
    `options` go to run_in_vm (`cold=`, `monitor=`)."""

    def run(module, name: str, **options) -> RunResult:
        spec = request.config.getoption("ktstr_kernel", None) or settings().kernel
        test = getattr(module, name)
        assert isinstance(test, KtstrTest)
        where = TestLocation(test_id=f"{module.__name__}::{name}", module_file=module.__file__,
                             module_name=module.__name__, qualname=name,
                             sys_path=tuple(p for p in __import__("sys").path),
                             cwd=str(Path.cwd()))
        return run_in_vm(test, where, kernel_spec=spec, run_dir=tmp_path, **options)

    return run


@pytest.fixture
def run_pytest(tmp_path: Path, request: pytest.FixtureRequest):
    """Run pytest (the plugin as a user runs it) in a subprocess on `tmp_path/NAME`
    written from `source`, results under `tmp_path/runs`, with this session's kernel;
    return the finished process (stdout and stderr as text)."""

    def run(name: str, source: str, *args: str,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
        (tmp_path / name).write_text(source)
        kernel = request.config.getoption("ktstr_kernel", None) or settings().kernel
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args,
             "--ktstr-run-dir", str(tmp_path / "runs"),
             *(["--kernel", kernel] if kernel else []), str(tmp_path / name)],
            capture_output=True, text=True, cwd=tmp_path, timeout=timeout, check=False)

    return run
