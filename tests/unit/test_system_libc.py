"""ktstr.system.libc: the machine name and the system call numbers looked up by it."""

import platform

from ktstr.system import libc


def test_machine_is_what_platform_machine_says():
    assert platform.machine() == libc.MACHINE


def test_syscall_nr_looks_the_number_up_by_machine(monkeypatch):
    monkeypatch.setattr(libc, "MACHINE", "x86_64")
    assert libc.syscall_nr("futex") == 202
    monkeypatch.setattr(libc, "MACHINE", "aarch64")
    assert libc.syscall_nr("futex") == 98
    monkeypatch.setattr(libc, "MACHINE", "vax")
    assert libc.syscall_nr("futex") is None
