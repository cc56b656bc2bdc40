import shutil
import subprocess

import pytest

from ktstr.errors import KernelError
from ktstr.vm import debian
from ktstr.vm.debian import (
    compare_versions,
    generic_kernel_versions,
    is_generic_flavour,
    system_mirror,
)

# Mirror URIs below are placeholders under the reserved .example domain: what is tested
# is which source line is chosen, never a real host.


def write_etc(tmp_path, sources_list="", parts=None):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(sources_list)
    for name, text in (parts or {}).items():
        (etc / "sources.list.d" / name).write_text(text)
    return etc


def test_system_mirror_one_line_skips_security_and_deb_src(tmp_path):
    etc = write_etc(tmp_path, """\
# a comment
deb-src http://src.example/debian bookworm main
deb [ arch=amd64 signed-by=/k.gpg ] http://sec.example/debian-security bookworm-security main
deb [arch=amd64] http://one.example/debian bookworm main contrib # trailing comment
""")
    assert system_mirror(etc) == "http://one.example/debian"


def test_system_mirror_deb822_skips_disabled_and_reads_continuations(tmp_path):
    etc = write_etc(tmp_path, parts={"debian.sources": """\
Types: deb
URIs: http://off.example/debian
Suites: trixie
Components: main
Enabled: no

Types: deb deb-src
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://two.example/debian
Suites: trixie trixie-updates
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NlOp
 -----END PGP PUBLIC KEY BLOCK-----
"""})
    assert system_mirror(etc) == "http://two.example/debian"


def test_system_mirror_ignores_third_party_and_disabled_files(tmp_path):
    etc = write_etc(tmp_path, parts={
        "a-vendor.list": "deb https://vendor.example/apt cloud-sdk-bookworm main\n",
        "b-node.sources": "Types: deb\nURIs: https://node.example/node_20.x\nSuites: nodistro\n",
        "c.list.disabled": "deb http://disabled.example/debian sid main\n",
        "d-ubuntu.list": "deb http://ubuntu.example/ubuntu noble main\n",
        "e-debian.list": "deb http://three.example/debian sid main\n",
    })
    assert system_mirror(etc) == "http://three.example/debian"


def test_system_mirror_sources_list_comes_before_parts(tmp_path):
    etc = write_etc(tmp_path, "deb http://first.example/debian bookworm main\n",
                    {"a.list": "deb http://second.example/debian sid main\n"})
    assert system_mirror(etc) == "http://first.example/debian"


def test_system_mirror_none_found_raises_with_hint(tmp_path):
    etc = write_etc(tmp_path, "deb http://sec.example/debian-security bookworm-security main\n")
    with pytest.raises(KernelError, match=r"no Debian archive mirror.*hint: pass --mirror URL"):
        system_mirror(etc)


PAIRS = [
    ("7.10.1", "7.9.3"), ("7.2.13+deb14", "7.2.9+deb14"), ("1.0~rc1", "1.0"),
    ("1:0.1", "2.0"), ("1.0-1", "1.0-1~bpo1"), ("1.0a", "1.0"), ("1.0+b1", "1.0"),
    ("6.1.0-18", "6.1.0-9"), ("2.0", "2.0"), ("1.0.0", "1.0"), ("1.01", "1.1"),
    ("7.2.13-1", "7.2.13-1+b1"), ("0~", "0"), ("a", "+"),
]


def test_compare_versions_known_orderings():
    assert compare_versions("7.10.1", "7.9.3") > 0
    assert compare_versions("1.0~rc1", "1.0") < 0
    assert compare_versions("1:0.1", "2.0") > 0
    assert compare_versions("1.01", "1.1") == 0
    assert compare_versions("7.2.13-1", "7.2.13-1+b1") < 0


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_compare_versions_agrees_with_dpkg(a, b):
    def dpkg(op):
        return subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0

    ours = compare_versions(a, b)
    assert (ours < 0, ours == 0, ours > 0) == (dpkg("lt"), dpkg("eq"), dpkg("gt"))


NAMES = [
    "linux-binary-unsigned-7.2.13+deb14-cloud-amd64",
    "linux-binary-unsigned-7.2.13+deb14-rt-amd64",
    "linux-binary-unsigned-7.2.13+deb14-amd64",
    "linux-binary-unsigned-7.9.2+deb14-amd64",
    "linux-binary-unsigned-7.10.1+deb14-amd64",
    "linux-binary-unsigned-7.10.1+deb14-amd64-dbg",
    "linux-binary-unsigned-7.11.0+deb14-cloud-amd64",
    "linux-binary-unsigned-7.11.0+deb14-arm64",
    "linux-base-7.12.0+deb14-amd64",
]


def test_generic_versions_newest_first_without_other_flavours():
    assert generic_kernel_versions(NAMES) == [
        "7.10.1+deb14-amd64", "7.9.2+deb14-amd64", "7.2.13+deb14-amd64"]


def test_generic_versions_prefix_stops_at_component_boundary():
    names = [*NAMES, "linux-binary-unsigned-7.20.1+deb14-amd64"]
    assert generic_kernel_versions(names, "7.2") == ["7.2.13+deb14-amd64"]
    assert generic_kernel_versions(names, "7.1") == []
    assert generic_kernel_versions(names, "7") == [
        "7.20.1+deb14-amd64", "7.10.1+deb14-amd64", "7.9.2+deb14-amd64", "7.2.13+deb14-amd64"]


def test_generic_flavour_old_abi_scheme():
    assert is_generic_flavour("6.1.0-18-amd64")
    assert not is_generic_flavour("6.1.0-18-cloud-amd64")
    assert not is_generic_flavour("6.1.0-18-rt-amd64")
    assert not is_generic_flavour("amd64")


def test_apt_session_options_keep_state_private(tmp_path):
    apt = debian.AptSession(tmp_path / "state", "file:/srv/mirror/debian")
    opts = apt.options()
    pairs = dict(o.split("=", 1) for o in opts[1::2])
    assert pairs["Dir::Etc::sourcelist"] == str(tmp_path / "state" / "sources.list")
    assert pairs["Dir::Etc::sourceparts"] == "-"
    assert pairs["Dir::State::Lists"].startswith(str(tmp_path))
    assert pairs["Dir::Cache"].startswith(str(tmp_path))
    assert pairs["Dir::State::status"] == "/dev/null"
    line = apt.source_line()
    assert line.startswith("deb [arch=amd64")
    assert line.endswith(" file:/srv/mirror/debian sid main\n")
