"""VM tests boot real qemu guests with the cached kernel (`make test` fetches it)."""

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
