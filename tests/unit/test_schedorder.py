"""A test's schedulers become orders by one rule on both sides of the wire: the host's
pre-boot check (ktstr.runner.schedorder) and the guest's orders (ktstr.guest.agent) call
ktstr.guest.schedorder, the guest with the binaries the host sent by name."""

from pathlib import Path

import pytest

from ktstr.errors import ConfigError, KtstrError
from ktstr.guest.agent import scheduler_orders
from ktstr.protocol import RunOverrides, SchedulerOrder, TestLocation, TestRequest
from ktstr.runner.schedorder import ATTACH_TIMEOUT_S, resolve_schedulers
from ktstr.scheduler import Scheduler, SchedulerSpec
from ktstr.testdef import ktstr_test
from ktstr.vm.kernel import Kernel

KERNEL = Kernel(key="k", version="7.2.13", image=Path("/k/vmlinuz"), config=None,
                modules_dir=None, vmlinux=None)
WHERE = TestLocation(test_id="t", module_file="/t.py", module_name="t", qualname="t")


def body(ctx):
    return None


def executable(tmp_path: Path, name: str) -> str:
    exe = tmp_path / name
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return str(exe)


def request(binaries: dict[str, str], overrides: RunOverrides | None = None) -> TestRequest:
    return TestRequest(where=WHERE, accel="tcg", scheduler_binaries=binaries,
                       attach_timeout_s=ATTACH_TIMEOUT_S["tcg"],
                       overrides=overrides or RunOverrides())


def test_the_guest_builds_the_hosts_orders_from_the_binaries_it_was_sent(tmp_path):
    own = Scheduler("own", binary=SchedulerSpec.path(executable(tmp_path, "own")),
                    sched_args=("--slice", "5"), sysctls={"kernel.x": "1"})
    other = Scheduler("other", binary=SchedulerSpec.path(executable(tmp_path, "other")))
    t = ktstr_test(scheduler=own, staged_schedulers=[other], extra_sched_args=["-v"])(body)
    host = resolve_schedulers(t, KERNEL, "tcg")
    assert host.binaries == {"own": str(tmp_path / "own"), "other": str(tmp_path / "other")}
    guest_own, guest_staged = scheduler_orders(t, request(host.binaries))
    assert guest_own == host.own and guest_staged == host.staged
    assert host.own is not None and host.own.argv[1:] == ["--slice", "5", "-v"]
    assert host.own.attach_timeout_s == ATTACH_TIMEOUT_S["tcg"]
    assert host.staged["other"].argv == [str(tmp_path / "other")]  # no extra_sched_args


def test_a_missing_binary_fails_on_the_host(tmp_path):
    t = ktstr_test(scheduler=Scheduler("gone", binary=SchedulerSpec.path(
        str(tmp_path / "gone"))))(body)
    with pytest.raises(ConfigError, match=r"^scheduler binary .*/gone does not exist or is "
                       r"not executable; hint: build it"):
        resolve_schedulers(t, KERNEL, "tcg")


def test_a_missing_config_file_fails_on_the_host(tmp_path):
    sched = Scheduler("cfg", binary=SchedulerSpec.path(executable(tmp_path, "cfg")),
                      config_file=str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"^scheduler cfg: config_file .*/nope.toml does "
                       r"not exist; hint: give a path relative to the working directory"):
        resolve_schedulers(ktstr_test(scheduler=sched)(body), KERNEL, "tcg")


def test_arguments_to_a_kernel_builtin_fail_on_the_host():
    sched = Scheduler("builtin", binary=SchedulerSpec.kernel_builtin(["echo on"]),
                      sched_args=("--x",))
    with pytest.raises(ConfigError, match=r"^scheduler builtin is built into the kernel: it "
                       r"takes no arguments \(\['--x'\]\); hint: put them in its enable"):
        resolve_schedulers(ktstr_test(scheduler=sched)(body), KERNEL, "tcg")


def test_a_kernel_builtin_needs_no_binary():
    sched = Scheduler("builtin", binary=SchedulerSpec.kernel_builtin(["echo on"], ["echo off"]))
    t = ktstr_test(scheduler=sched)(body)
    host = resolve_schedulers(t, KERNEL, "tcg")
    assert host.binaries == {}
    assert host.own == SchedulerOrder(name="builtin", enable=["echo on"], disable=["echo off"],
                                      attach_timeout_s=ATTACH_TIMEOUT_S["tcg"])
    assert scheduler_orders(t, request({}))[0] == host.own


def test_eevdf_has_no_orders():
    t = ktstr_test()(body)
    assert resolve_schedulers(t, KERNEL, "kvm") == resolve_schedulers(t, KERNEL, "tcg")
    assert scheduler_orders(t, request({})) == (None, {})


def test_a_binary_the_host_did_not_send_is_said_in_the_guest(tmp_path):
    t = ktstr_test(scheduler=Scheduler("own", binary=SchedulerSpec.path(
        executable(tmp_path, "own"))))(body)
    with pytest.raises(KtstrError, match=r"the host found no binary for scheduler own"):
        scheduler_orders(t, request({"other": "/x"}))


def test_an_overridden_scheduler_replaces_the_declared_one():
    swapped = SchedulerOrder(name="cell", argv=["/bin/cell"], attach_timeout_s=60.0)
    own, staged = scheduler_orders(ktstr_test()(body),
                                   request({}, RunOverrides("1n1l2c1t", swapped)))
    assert own == swapped and staged == {"cell": swapped}
