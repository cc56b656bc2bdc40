"""ktstr.system.net (/sys/class/net) and ktstr.system.sysctl (/proc/sys) on fake trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from ktstr.system import fs
from ktstr.system.net import IFF_UP, net_device_flags, net_devices
from ktstr.system.sched_debug import has_fair_server
from ktstr.system.sysctl import sysctl_int


def test_net_devices_and_flags(tmp_path: Path) -> None:
    for name, flags in (("lo", "0x9\n"), ("eth0", "0x1002\n")):
        (tmp_path / "class" / "net" / name).mkdir(parents=True)
        (tmp_path / "class" / "net" / name / "flags").write_text(flags)
    assert net_devices(tmp_path) == ["eth0", "lo"]
    assert net_device_flags("lo", tmp_path) & IFF_UP
    assert not net_device_flags("eth0", tmp_path) & IFF_UP
    with pytest.raises(fs.SysIoError):
        net_device_flags("wlan0", tmp_path)


def test_net_devices_of_this_machine_include_lo() -> None:
    assert "lo" in net_devices()


def test_sysctl_int_reads_a_dotted_key_and_is_none_when_missing(tmp_path: Path) -> None:
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "sched_rt_runtime_us").write_text("-1\n")
    (tmp_path / "kernel" / "odd").write_text("a b\n")
    assert sysctl_int("kernel.sched_rt_runtime_us", tmp_path) == -1
    assert sysctl_int("kernel.sched_rt_period_us", tmp_path) is None
    assert sysctl_int("kernel.odd", tmp_path) is None


def test_has_fair_server_looks_for_the_debugfs_directory(tmp_path: Path) -> None:
    assert not has_fair_server(tmp_path)
    (tmp_path / "sched" / "fair_server").mkdir(parents=True)
    assert has_fair_server(tmp_path)
