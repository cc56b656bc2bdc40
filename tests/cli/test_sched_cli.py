"""`ktstr sched {list,build}` through argparse, on a fake cache (no network, no compiler)."""

import argparse
import json

import pytest

from ktstr.cli import sched_cmd
from ktstr.errors import KernelError

KEY = "7.2.13+deb14-amd64"
NAMES = ["scx_simple", "scx_qmap", "scx_central", "scx_flatcg"]


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    root = tmp_path / "cache" / "kernels"
    root.mkdir(parents=True)
    return root


def add_kernel(root, key=KEY):
    entry = root / key
    entry.mkdir()
    (entry / "vmlinuz").write_bytes(b"MZ")
    (entry / "config").write_text("CONFIG_SCHED_CLASS_EXT=y\n")
    (entry / "vmlinux").write_bytes(b"\x7fELF")
    (entry / "kernel.json").write_text(json.dumps({"key": key, "version": key}))
    return entry


def add_built(entry):
    sched = entry / "sched"
    sched.mkdir()
    for name in [*NAMES, "bpftool"]:
        (sched / name).write_text("#!/bin/sh\n")
        (sched / name).chmod(0o755)
    (sched / "sched.json").write_text(json.dumps({
        "kernel": entry.name, "source_package": "linux-source-7.2",
        "source_version": "7.2.13-1", "built_at": "2026-11-23T12:00:00+00:00",
        "schedulers": NAMES, "helpers": ["bpftool"],
        "tools": {"bpf_clang": "clang version 22.1.8"}}))


def add_path_binary(tmp_path, name):
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def run(*argv):
    parser = argparse.ArgumentParser(prog="ktstr")
    sched_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sched", *argv])
    return args.func(args)


def test_list_without_kernels_or_binaries(kernels, capsys):
    assert run("list") == 0
    out = capsys.readouterr().out
    assert "no cached kernel" in out and "ktstr kernel fetch" in out
    assert "no scx_* binaries" in out


def test_list_unbuilt_kernel_hints_build(kernels, capsys):
    add_kernel(kernels)
    assert run("list") == 0
    assert f"ktstr sched build --kernel {KEY}" in capsys.readouterr().out


def test_list_shows_built_schedulers_and_path(kernels, tmp_path, capsys):
    add_built(add_kernel(kernels))
    rusty = add_path_binary(tmp_path, "scx_rusty")
    add_path_binary(tmp_path, "bash")
    assert run("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"kernel {KEY}: built 2026-11-23T12:00:00+00:00 from "
                        "linux-source-7.2 7.2.13-1")
    listed = [line.split()[0] for line in lines[1:6]]
    assert listed == [*NAMES, "bpftool"]
    assert str(kernels / KEY / "sched" / "scx_simple") in lines[1]
    assert lines[6] == "on PATH:"
    assert lines[7].split() == ["scx_rusty", str(rusty)]
    assert len(lines) == 8  # bash is not a scheduler


def test_list_unknown_kernel_is_an_error(kernels):
    add_kernel(kernels)
    with pytest.raises(KernelError, match="not found"):
        run("list", "--kernel", "9.9")


def test_build_when_already_built_skips(kernels, capsys, monkeypatch):
    add_built(add_kernel(kernels))
    monkeypatch.setattr("ktstr.vm.sched.build.check_toolchain",
                        lambda: pytest.fail("a complete build must not check the toolchain"))
    assert run("build", "--kernel", "7.2") == 0
    out = capsys.readouterr().out
    assert "already built (2026-11-23T12:00:00+00:00)" in out
    assert "scx_flatcg" in out
