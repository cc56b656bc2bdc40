from ktstr.settings import Settings
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


def test_the_setting_forces_the_choice(monkeypatch):
    assert choose_accel(Settings(accel="tcg")) == "tcg"
    monkeypatch.setenv("KTSTR_ACCEL", "tcg")
    assert choose_accel() == "tcg"  # this process's settings


def test_one_tcg_thread_where_a_scheduler_may_load():
    assert choose_tcg_threads(True, Settings()) == "single"
    assert choose_tcg_threads(False, Settings()) == "multi"
    assert choose_tcg_threads(False, Settings(tcg_threads="single")) == "single"
    assert choose_tcg_threads(True, Settings(tcg_threads="multi")) == "multi"


def test_an_int3_oops_under_multi_threaded_tcg_is_explained():
    console = "[ 10.2] Oops: int3: 0000 [#1] SMP NOPTI\n[ 10.2] RIP: 0010:sched_balance_rq"
    why = text_patch_race(console, "multi")
    assert "text patching" in why and "staged_schedulers" in why and \
        "KTSTR_TCG_THREADS=single" in why
    assert text_patch_race(console, "single") == ""  # not this race: one thread
    assert text_patch_race("[ 10.2] Oops: general protection fault", "multi") == ""
