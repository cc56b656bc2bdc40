"""`ktstr kernel {list,clean,fetch}` through argparse, on a fake cache (no network)."""

import argparse

import pytest
from fake_cache import KEY, add_kernel

from ktstr.cli import kernel_cmd
from ktstr.errors import ConfigError, KernelError


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path))
    root = tmp_path / "kernels"
    root.mkdir()
    return root


def run(*argv):
    parser = argparse.ArgumentParser(prog="ktstr")
    kernel_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["kernel", *argv])
    return args.func(args)


def test_list_empty_cache_hints_fetch(kernels, capsys):
    assert run("list") == 0
    assert "no cached kernels" in capsys.readouterr().out


def test_list_shows_each_kernel_newest_first(kernels, capsys):
    add_kernel(kernels, KEY)
    add_kernel(kernels, "7.10.1+deb14-amd64", sched_ext=False)
    assert run("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["7.10.1+deb14-amd64", KEY]
    assert lines[0].split()[1] == "no-sched_ext" and lines[1].split()[1] == "sched_ext"
    assert "1 modules" in lines[1] and "no-vmlinux" in lines[1]


def test_fetch_cached_version_prints_already_cached(kernels, capsys):
    add_kernel(kernels, KEY)
    assert run("fetch", "7.2") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"kernel {KEY} already cached")


def test_fetch_accepts_mirror_option():
    parser = argparse.ArgumentParser(prog="ktstr")
    kernel_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["kernel", "fetch", "--mirror", "file:/srv/debian"])
    assert (args.version, args.mirror, args.func) == (None, "file:/srv/debian",
                                                      kernel_cmd.cmd_fetch)


def test_clean_key_then_all(kernels, capsys):
    add_kernel(kernels, KEY)
    add_kernel(kernels, "7.10.1+deb14-amd64")
    assert run("clean", KEY) == 0
    assert capsys.readouterr().out == f"removed {KEY}\n"
    assert run("clean", "--all") == 0
    assert capsys.readouterr().out == "removed 7.10.1+deb14-amd64\n"
    assert run("clean", "--all") == 0
    assert capsys.readouterr().out == "nothing to remove\n"


def test_clean_needs_keys_or_all(kernels):
    with pytest.raises(ConfigError, match=r"cache keys or --all"):
        run("clean")
    with pytest.raises(ConfigError, match=r"cache keys or --all"):
        run("clean", KEY, "--all")


def test_clean_unknown_key_raises(kernels):
    add_kernel(kernels, KEY)
    with pytest.raises(KernelError, match=r"no cached kernel '9\.9'"):
        run("clean", "9.9")


def test_kernel_needs_a_subcommand():
    with pytest.raises(SystemExit):
        run()
