"""Kernel ids (what --kernel and a scheduler's kernels= take) and the verifier sweep's
per-scheduler filter."""

from pathlib import Path

import pytest

from ktstr.errors import ConfigError
from ktstr.kernelid import (
    KernelCacheKey,
    KernelEntry,
    KernelGit,
    KernelPath,
    KernelRange,
    KernelVersion,
    decompose_version,
    kernel_filter_accepts,
    matches,
    matches_version,
    parse_kernel_id,
)
from ktstr.vm.kernel import Kernel

RC_NONE = 2**64 - 1


def entry(raw: str, version: str = "7.2.13+deb14-amd64", key: str | None = None) -> KernelEntry:
    k = Kernel(key=key or version, version=version, image=Path("/k/vmlinuz"), config=None,
               modules_dir=None, vmlinux=None)
    return KernelEntry(raw, k)


def test_matches_version_exact_and_prefix():
    assert matches_version("7.2.13+deb14-amd64", "7.2.13+deb14-amd64")
    assert matches_version("7.2.13+deb14-amd64", "7.2.13")
    assert not matches_version("7.2.13+deb14-amd64", "7.2.1")
    assert matches_version("7.2.13+deb14-amd64", None)


def test_kernelid_imports_nothing_of_the_vm_layer():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import sys, ktstr.kernelid; "
                          "print(sorted(m for m in sys.modules if m.startswith('ktstr.')))"],
                         capture_output=True, text=True, check=True)
    assert "ktstr.vm" not in out.stdout, out.stdout


@pytest.mark.parametrize("text, want", [
    ("6.10", (6, 10, 0, RC_NONE)),
    ("6.10.0", (6, 10, 0, RC_NONE)),
    ("6.10.5-rc1", (6, 10, 5, 1)),
    ("7", (7, 0, 0, RC_NONE)),
    ("6.10-rc", None), ("1.2.3.4", None), ("6.", None), ("v6.1", None),
    ("7.2.13+deb14-amd64", None),
])
def test_decompose_version_follows_the_seeds_grammar(text, want):
    assert decompose_version(text) == want


def test_a_release_sorts_above_its_own_release_candidates():
    assert decompose_version("6.10-rc3") < decompose_version("6.10") < decompose_version("6.10.1")


@pytest.mark.parametrize("spec, want", [
    ("6.14.2", KernelVersion("6.14.2")),
    ("7.2", KernelVersion("7.2")),
    ("6.14..7.0", KernelRange("6.14", "7.0")),
    ("6.14..=7.0", KernelRange("6.14", "7.0", inclusive_syntax=True)),
    ("git+https://git.kernel.org/linux.git#v7.2", KernelGit("https://git.kernel.org/linux.git",
                                                            "v7.2")),
    ("../linux", KernelPath("../linux")),
    ("/boot/vmlinuz-7.2", KernelPath("/boot/vmlinuz-7.2")),
    ("7.2.13+deb14-amd64", KernelCacheKey("7.2.13+deb14-amd64")),
    ("6.14.2-tarball-x86_64-kc1234", KernelCacheKey("6.14.2-tarball-x86_64-kc1234")),
])
def test_parse_kernel_id_picks_the_variant(spec, want):
    assert parse_kernel_id(spec) == want
    assert str(parse_kernel_id(spec)) == spec


@pytest.mark.parametrize("spec, message", [
    ("", "is empty"),
    ("git+https://host/linux.git", "needs a ref"),
    ("7.0..6.14", r"inverted: 7.0 is above 6.14; hint: 6.14..7.0"),
    ("6.10..6.10-rc3", "inverted"),
    ("6.14..latest", "both ends must be versions"),
])
def test_bad_kernel_ids_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_kernel_id(spec)


def test_an_exact_version_matches_the_raw_label_or_the_release_as_kernel_does():
    auto = entry("7.2.13+deb14-amd64")  # `--kernel` omitted: the newest cached kernel
    assert matches(KernelVersion("7.2.13"), auto)
    assert matches(KernelVersion("7.2"), auto)  # the same prefix rule as `--kernel 7.2`
    assert not matches(KernelVersion("7.2"), entry("7.20.1", version="7.20.1-amd64"))
    assert not matches(KernelVersion("7.1"), auto)
    assert matches(KernelVersion("6.14"), entry("6.14", version="weird-build"))  # raw label


def test_a_range_is_inclusive_on_both_ends_by_decomposed_version():
    e = entry("x", version="7.0.0-amd64")
    for spec in ("6.14..7.0", "6.14..=7.0", "7.0..7.1"):
        assert matches(parse_kernel_id(spec), e), spec
    assert not matches(parse_kernel_id("6.14..6.99"), e)
    # 7.2.13 lies above 7.2 (= 7.2.0): a range ending at 7.2 excludes the stable series.
    assert not matches(parse_kernel_id("7.0..7.2"), entry("7.2.13+deb14-amd64"))
    assert matches(parse_kernel_id("7.0..7.2.999"), entry("7.2.13+deb14-amd64"))
    assert not matches(parse_kernel_id("1.0..9.0"), entry("x", version="no-version"))


def test_paths_keys_and_git_match_by_label():
    tree = entry("../linux", version="7.3.0-rc1", key="/src/linux")
    assert matches(KernelPath("/src/linux"), tree)
    assert matches(KernelPath("../linux"), tree)
    assert not matches(KernelPath("/src/other"), tree)
    cached = entry("7.2")
    assert matches(KernelCacheKey("7.2.13+deb14-amd64"), cached)
    assert not matches(KernelCacheKey("7.2.13+deb13-amd64"), cached)
    assert matches(parse_kernel_id("git+u#r"), entry("git+u#r"))
    assert not matches(parse_kernel_id("git+u#r"), cached)


def test_an_empty_filter_accepts_every_kernel_and_any_entry_suffices():
    e = entry("7.2.13+deb14-amd64")
    assert kernel_filter_accepts((), e)
    assert kernel_filter_accepts(("6.14", "7.0..=7.2.99"), e)
    assert not kernel_filter_accepts(("6.14", "6.15..=7.0"), e)


def test_a_schedulers_bad_kernels_entry_fails_its_declaration():
    from ktstr.scheduler import Scheduler

    with pytest.raises(ConfigError, match=r"scheduler s: kernels: kernel range '7.0..6.1' is "
                       "inverted"):
        Scheduler("s", kernels=["6.14", "7.0..6.1"])
    assert Scheduler("s", kernels=["6.14", "6.15..=7.0"]).kernels == ("6.14", "6.15..=7.0")

