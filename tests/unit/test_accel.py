import pytest

from ktstr.errors import ConfigError
from ktstr.vm.accel import (
    choose_accel,
    choose_tcg_threads,
    cpu_has_virt,
    kvm_usable,
    text_patch_race,
)


def test_cpu_flags_need_vmx_or_svm():
    assert cpu_has_virt("processor: 0\nflags\t\t: fpu vme vmx sse\n")
    assert cpu_has_virt("flags : fpu svm\n")
    assert not cpu_has_virt("flags : fpu hypervisor sse\n")


def test_kvm_device_that_cannot_open_is_not_usable(tmp_path):
    assert not kvm_usable(tmp_path / "missing-kvm")


def test_kvm_device_without_virt_flags_is_not_usable(tmp_path):
    dev = tmp_path / "kvm"
    dev.write_text("")
    info = tmp_path / "cpuinfo"
    info.write_text("flags : fpu hypervisor\n")
    assert not kvm_usable(dev, info)
    info.write_text("flags : fpu vmx\n")
    assert kvm_usable(dev, info)


def test_environment_forces_the_choice():
    assert choose_accel({"KTSTR_ACCEL": "tcg"}) == "tcg"
    with pytest.raises(ConfigError, match="KTSTR_ACCEL='xen'"):
        choose_accel({"KTSTR_ACCEL": "xen"})


def test_one_tcg_thread_where_a_scheduler_may_load():
    assert choose_tcg_threads(True, env={}) == "single"
    assert choose_tcg_threads(False, env={}) == "multi"
    assert choose_tcg_threads(False, env={"KTSTR_TCG_THREADS": "single"}) == "single"
    assert choose_tcg_threads(True, env={"KTSTR_TCG_THREADS": "multi"}) == "multi"
    with pytest.raises(ConfigError, match=r"KTSTR_TCG_THREADS='many'.*single"):
        choose_tcg_threads(False, env={"KTSTR_TCG_THREADS": "many"})


def test_an_int3_oops_under_multi_threaded_tcg_is_explained():
    console = "[ 10.2] Oops: int3: 0000 [#1] SMP NOPTI\n[ 10.2] RIP: 0010:sched_balance_rq"
    why = text_patch_race(console, "multi")
    assert "text patching" in why and "staged_schedulers" in why and \
        "KTSTR_TCG_THREADS=single" in why
    assert text_patch_race(console, "single") == ""  # not this race: one thread
    assert text_patch_race("[ 10.2] Oops: general protection fault", "multi") == ""
