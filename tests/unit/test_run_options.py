"""run_in_vm's `cold` and `monitor`: a parameter wins, None takes the setting (no VM:
the boot itself is replaced by a recorder)."""

from pathlib import Path

import pytest

from ktstr.runner import vmrun
from ktstr.runner.schedorder import ResolvedSchedulers
from ktstr.testdef import ktstr_test
from ktstr.vm.kernel import Kernel

# Not at module level: the plugin would collect a KtstrTest there and boot it.
WHERE = vmrun.TestLocation(test_id="t::one", module_file="/t.py", module_name="t",
                           qualname="one")


@pytest.fixture
def boots(monkeypatch, tmp_path):
    """What each run asked the boot for: whether to use saved guests, whether to monitor."""
    asked: list[dict[str, bool]] = []
    kernel = Kernel(key="k", version="k", image=tmp_path / "vmlinuz", config=None,
                    modules_dir=None, vmlinux=None)
    monkeypatch.setattr(vmrun, "resolve_kernel", lambda spec: kernel)
    monkeypatch.setattr(vmrun, "choose_accel", lambda: "tcg")
    monkeypatch.setattr(vmrun, "resolve_schedulers",
                        lambda test, kernel, accel: ResolvedSchedulers({}, None, {}))

    def boot_and_run(plan: vmrun.RunPlan, workdir: Path, *, snapshots: bool,
                     monitored: bool) -> vmrun.RunResult:
        asked.append({"snapshots": snapshots, "monitored": monitored})
        return plan.empty_result()
    monkeypatch.setattr(vmrun, "_boot_and_run", boot_and_run)
    return asked


def run(tmp_path: Path, **options) -> None:
    vmrun.run_in_vm(ktstr_test()(lambda ctx: None), WHERE, kernel_spec=None,
                    run_dir=tmp_path / "runs", **options)


def test_without_settings_a_run_restores_and_is_monitored(boots, tmp_path):
    run(tmp_path)
    assert boots == [{"snapshots": True, "monitored": True}]


def test_the_settings_supply_the_defaults(boots, tmp_path, monkeypatch):
    monkeypatch.setenv("KTSTR_MONITOR", "off")
    monkeypatch.setenv("KTSTR_COLD", "1")
    run(tmp_path)
    assert boots == [{"snapshots": False, "monitored": False}]


def test_a_parameter_wins_over_its_setting(boots, tmp_path, monkeypatch):
    run(tmp_path, cold=True, monitor=False)
    monkeypatch.setenv("KTSTR_MONITOR", "off")
    monkeypatch.setenv("KTSTR_COLD", "1")
    from ktstr.settings import settings
    settings.cache_clear()
    run(tmp_path, cold=False, monitor=True)
    assert boots == [{"snapshots": False, "monitored": False},
                     {"snapshots": True, "monitored": True}]
