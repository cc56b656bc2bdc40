"""`ktstr snapshot {list,clean}` through the real entry point, on a private cache."""

import json

import pytest

from ktstr.cli.main import main

META = {"topology": "1n2l2c1t", "memory_mb": 2048, "accel": "tcg", "size": 190 * 2**20,
        "image": "/c/kernels/7.2.13+deb14-amd64/vmlinux", "qemu": "7.2.22", "created": 0}


@pytest.fixture
def snaps(tmp_path, monkeypatch):
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path))
    root = tmp_path / "snapshots"
    for key in ("abc123", "abd456"):
        (root / key).mkdir(parents=True)
        (root / key / "state").write_bytes(b"QEVM")
        (root / key / "meta.json").write_text(json.dumps(META))
    return root


def test_list_shows_each_snapshot_with_its_configuration(snaps, capsys):
    assert main(["snapshot", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("KEY")
    assert out[1].split()[:3] == ["abc123", "1n2l2c1t", "2048"]
    assert "7.2.13+deb14-amd64" in out[1] and "190.0 MiB" in out[1]


def test_list_without_snapshots_says_where_they_would_be(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path))
    assert main(["snapshot", "list"]) == 0
    assert f"no snapshots in {tmp_path / 'snapshots'}" in capsys.readouterr().out


def test_clean_by_prefix_then_all(snaps, capsys):
    assert main(["snapshot", "clean", "abc"]) == 0
    assert capsys.readouterr().out == "removed snapshot abc123\n"
    assert main(["snapshot", "clean", "--all"]) == 0
    assert not [p for p in snaps.iterdir() if p.is_dir()]


@pytest.mark.parametrize("argv, message", [
    (["snapshot", "clean"], "ktstr snapshot clean --all"),
    (["snapshot", "clean", "zzz"], "no snapshot matches zzz"),
    (["snapshot", "clean", "abc", "--all"], "not both"),
])
def test_clean_refuses_what_it_cannot_do(snaps, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert len([p for p in snaps.iterdir() if p.is_dir()]) == 2
