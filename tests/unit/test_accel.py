import pytest

from ktstr.errors import ConfigError
from ktstr.vm.accel import choose_accel, cpu_has_virt, kvm_usable


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
