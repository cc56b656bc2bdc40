"""The KTSTR_* settings: read one way, checked once, documented in the README (pure)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ktstr.errors import ConfigError
from ktstr.settings import VARIABLES, Settings, settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_nothing_set_is_every_default():
    assert Settings.from_env({}) == Settings()
    s = Settings()
    assert (s.cold, s.monitor, s.kaslr, s.host_kaslr) == (False, True, True, False)
    assert (s.cache_dir, s.kernel, s.run_dir, s.accel, s.tcg_threads, s.qemu,
            s.busybox) == (None,) * 7


@pytest.mark.parametrize(("value", "default", "want"), [
    (None, True, True), (None, False, False), ("", True, True), ("  ", False, False),
    ("1", False, True), ("on", False, True), ("yes", False, True),
    ("0", True, False), ("off", True, False), ("OFF", True, False), ("no", True, False),
    ("false", True, False)])
def test_an_on_off_switch_reads_one_way(value, default, want):
    env = {} if value is None else {"KTSTR_COLD": value, "KTSTR_MONITOR": value,
                                    "KTSTR_KASLR": value}
    s = Settings.from_env(env)
    if default:
        assert s.monitor is want and s.kaslr is want
    else:
        assert s.cold is want


def test_values_are_taken_as_given():
    s = Settings.from_env({"KTSTR_CACHE_DIR": "/c", "KTSTR_KERNEL": "7.2",
                           "KTSTR_RUN_DIR": "/r", "KTSTR_ACCEL": " tcg ",
                           "KTSTR_TCG_THREADS": "single", "KTSTR_QEMU": "/q/qemu",
                           "KTSTR_BUSYBOX": "/b/busybox"})
    assert s == Settings(cache_dir=Path("/c"), kernel="7.2", run_dir=Path("/r"), accel="tcg",
                         tcg_threads="single", qemu=Path("/q/qemu"),
                         busybox=Path("/b/busybox"))


def test_a_bad_accelerator_is_named_with_the_accepted_ones():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"KTSTR_ACCEL": "xen"})
    assert str(err.value) == "KTSTR_ACCEL='xen' is not an accelerator; hint: use kvm or tcg"


def test_a_bad_tcg_threading_is_named_with_the_accepted_ones():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"KTSTR_TCG_THREADS": "many"})
    assert str(err.value) == ("KTSTR_TCG_THREADS='many' is not a TCG threading; hint: use "
                              "single (every vCPU on one host thread) or multi")


def test_the_process_reads_its_environment_once(monkeypatch):
    monkeypatch.setenv("KTSTR_COLD", "1")
    assert settings().cold
    monkeypatch.setenv("KTSTR_COLD", "0")
    assert settings().cold, "read at the first call, not again"
    settings.cache_clear()
    assert not settings().cold


def test_every_variable_is_a_field_and_a_row_of_the_readme():
    names = {v.name for v in VARIABLES}
    assert len(names) == len(Settings.__dataclass_fields__) == 11
    every_set = Settings.from_env({n: "on" if n.endswith(("COLD", "MONITOR", "KASLR"))
                                   else "tcg" if n.endswith("ACCEL")
                                   else "multi" if n.endswith("THREADS") else "/x"
                                   for n in names})
    assert all(getattr(every_set, f) != getattr(Settings(), f)
               for f in ("cache_dir", "kernel", "run_dir", "cold", "host_kaslr", "accel",
                         "tcg_threads", "qemu", "busybox"))
    table = README.read_text().partition("## Settings")[2]
    rows = re.findall(r"^\| `(KTSTR_\w+)` \|", table, re.M)
    assert rows == [v.name for v in VARIABLES]
