"""Building and caching the kernel's example sched_ext schedulers, with fake source and make."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from ktstr.errors import ConfigError, HostSetupError, KernelError
from ktstr.scheduler import SchedulerSpec
from ktstr.vm.kernel import Kernel, load_cached
from ktstr.vm.sched import build as sbuild
from ktstr.vm.sched import cache as scache
from ktstr.vm.sched import source as ssource
from ktstr.vm.sched.source import SourceTree

KEY = "7.2.13+deb14-amd64"


@pytest.fixture
def kroot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    root = tmp_path / "cache" / "kernels"
    root.mkdir(parents=True)
    return root


def add_kernel(root: Path, key: str = KEY, *, sched_ext: bool = True,
               vmlinux: bool = True) -> Kernel:
    entry = root / key
    entry.mkdir()
    (entry / "vmlinuz").write_bytes(b"MZ")
    (entry / "config").write_text(f"CONFIG_SCHED_CLASS_EXT={'y' if sched_ext else 'n'}\n")
    if vmlinux:
        (entry / "vmlinux").write_bytes(b"\x7fELF")
    (entry / "kernel.json").write_text(json.dumps({
        "key": key, "version": key, "mirror": "file:/srv/debian", "suite": "sid",
        "packages": {f"linux-binary-unsigned-{key}": "7.2.13-1"}}))
    kernel = load_cached(entry)
    assert kernel is not None
    return kernel


def executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


class FakeBuild:
    """Stands in for the source download and make: records calls, writes fake binaries."""

    def __init__(self, *, missing: str | None = None) -> None:
        self.fetches: list[str | None] = []
        self.makes: list[tuple[Path, Path]] = []
        self.missing = missing

    def fetch(self, kernel: Kernel, work: Path, *, mirror: str | None = None) -> SourceTree:
        self.fetches.append(mirror)
        (work / "src/tools/sched_ext").mkdir(parents=True)
        return SourceTree(work / "src", "linux-source-7.2", "7.2.13-1")

    def make(self, src: Path, vmlinux: Path, log: Path) -> Path:
        self.makes.append((src, vmlinux))
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("make ok\n")
        build = src / "tools/sched_ext/build"
        n = len(self.makes)
        for name in scache.EXAMPLE_SCHEDULERS:
            if name != self.missing:
                executable(build / "bin" / name, f"#!/bin/sh\necho {name} {n}\n")
        executable(build / "sbin/bpftool", "#!/bin/sh\necho bpftool v7.8.0\n")
        return build

    def run(self, kernel: Kernel, **kw: object) -> sbuild.BuildResult:
        return sbuild.build_schedulers(kernel, fetch=self.fetch, make=self.make, **kw)  # type: ignore[arg-type]


@pytest.fixture
def toolchain_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbuild, "check_toolchain", lambda: None)


# -- tarball member selection ----------------------------------------------------------

@pytest.mark.parametrize(("name", "rel"), [
    ("linux-source-7.2/tools/sched_ext/scx_simple.c", "tools/sched_ext/scx_simple.c"),
    ("linux-source-7.2/Makefile", "Makefile"),
    ("linux-source-7.2/arch/x86/include/asm/x.h", "arch/x86/include/asm/x.h"),
    ("linux-source-7.2/kernel/bpf/btf.c", "kernel/bpf/btf.c"),
    ("./linux-source-7.2/include/linux/sched.h", "include/linux/sched.h"),
    ("linux-source-7.2/include", "include"),
    ("linux-source-7.2/arch/x86/kernel/setup.c", None),
    ("linux-source-7.2/kernel/sched/ext.c", None),
    ("linux-source-7.2/Makefile.orig", None),
    ("linux-source-7.2/drivers/net/x.c", None),
    ("linux-source-7.2/tools/../../etc/passwd", None),
    ("Makefile", None),  # no top directory
])
def test_wanted_member(name: str, rel: str | None) -> None:
    assert ssource.wanted_member(name) == rel


def _tarball(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:xz") as tf:
        for name in names:
            data = name.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_extract_parts_takes_only_the_slice(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "src.tar.xz", [
        "linux-source-7.2/Makefile", "linux-source-7.2/tools/sched_ext/Makefile",
        "linux-source-7.2/drivers/gpu/big.c", "linux-source-7.2/lib/string.c"])
    dest = tmp_path / "out"
    assert ssource.extract_parts(tarball, dest) == 3
    assert (dest / "tools/sched_ext/Makefile").read_text() == (
        "linux-source-7.2/tools/sched_ext/Makefile")
    assert (dest / "lib/string.c").is_file()
    assert not (dest / "drivers").exists()


def test_extract_parts_without_sched_ext_is_an_error(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "src.tar.xz", ["linux-source-6.1/Makefile"])
    with pytest.raises(KernelError, match="no tools/sched_ext"):
        ssource.extract_parts(tarball, tmp_path / "out")


def test_source_package_and_pinned_version(kroot: Path) -> None:
    kernel = add_kernel(kroot)
    assert ssource.source_package(KEY) == "linux-source-7.2"
    assert ssource.source_package("6.12.9-amd64") == "linux-source-6.12"
    assert ssource.kernel_package_version(kernel) == "7.2.13-1"
    with pytest.raises(KernelError, match=r"MAJOR\.MINOR"):
        ssource.source_package("custom")


# -- toolchain ---------------------------------------------------------------------------

def test_missing_compiler_names_packages(tmp_path: Path) -> None:
    (tmp_path / "gelf.h").write_text("")
    (tmp_path / "zlib.h").write_text("")
    have = {"make"}
    with pytest.raises(HostSetupError) as err:
        sbuild.check_toolchain(lambda t: f"/usr/bin/{t}" if t in have else None, tmp_path,
                               lambda: None)
    msg = str(err.value)
    assert "clang-19" in err.value.what and "ld.lld-19" in err.value.what
    assert err.value.install == "apt-get install -y clang-19 llvm-19 lld-19"
    assert "hint: apt-get install" in msg


def test_missing_header_names_dev_package(tmp_path: Path) -> None:
    (tmp_path / "zlib.h").write_text("")
    with pytest.raises(HostSetupError) as err:
        sbuild.check_toolchain(lambda t: "/usr/bin/" + t, tmp_path)
    assert err.value.install == "apt-get install -y libelf-dev"


def test_complete_toolchain_passes(tmp_path: Path) -> None:
    for h in ("gelf.h", "zlib.h"):
        (tmp_path / h).write_text("")
    sbuild.check_toolchain(lambda t: "/usr/bin/" + t, tmp_path, lambda: Path("/v/zig"))


def test_missing_zig_names_the_pypi_package(tmp_path: Path) -> None:
    for h in ("gelf.h", "zlib.h"):
        (tmp_path / h).write_text("")
    with pytest.raises(HostSetupError) as err:
        sbuild.check_toolchain(lambda t: "/usr/bin/" + t, tmp_path, lambda: None)
    assert err.value.install.endswith("-m pip install ziglang")
    assert "scx_qmap" in err.value.what


def test_find_zig_is_the_ziglang_wheels_executable() -> None:
    zig = sbuild.find_zig()  # ziglang is a dependency in pyproject.toml
    assert zig is not None and zig.name == "zig" and os.access(zig, os.X_OK)
    assert zig.parent.name == "ziglang"


def test_bpf_clang_wrapper_runs_zig_clang_with_its_arguments(tmp_path: Path) -> None:
    fake_zig = executable(tmp_path / "odd dir/zig", '#!/bin/sh\necho "$@"\n')
    script = sbuild.write_bpf_clang(fake_zig, tmp_path)
    assert script == tmp_path / sbuild.BPF_CLANG_SCRIPT and os.access(script, os.X_OK)
    assert "'" + str(fake_zig) + "'" in script.read_text()  # quoted: the path has a space
    out = subprocess.run([str(script), "-target", "bpf", "a b.c"], capture_output=True,
                         text=True, check=True).stdout
    assert out == "clang -target bpf a b.c\n"


def test_make_argv_swaps_only_the_bpf_compiler(tmp_path: Path) -> None:
    argv = sbuild.make_argv(tmp_path / "src", Path("/k/vmlinux"), Path("/w/bpf-clang"), 2)
    assert argv[:4] == ["make", "-C", str(tmp_path / "src/tools/sched_ext"), "-j2"]
    assert "LLVM=-19" in argv  # userspace, libbpf and bpftool stay on clang-19
    assert "CLANG=/w/bpf-clang" in argv and "VMLINUX_BTF=/k/vmlinux" in argv
    assert argv[-len(scache.EXAMPLE_SCHEDULERS):] == list(scache.EXAMPLE_SCHEDULERS)


def test_build_checks_toolchain_before_download(kroot: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = add_kernel(kroot)
    monkeypatch.setattr(sbuild.shutil, "which", lambda t: None)  # PATH is empty too
    fake = FakeBuild()
    with pytest.raises(HostSetupError, match="clang-19"):
        sbuild.build_schedulers(kernel, fetch=fake.fetch, make=fake.make)
    assert fake.fetches == []


# -- build, manifest, cache --------------------------------------------------------------

def test_build_installs_binaries_and_manifest(kroot: Path, toolchain_ok: None) -> None:
    kernel = add_kernel(kroot)
    fake = FakeBuild()
    result = fake.run(kernel, mirror="http://m/debian")
    where = kroot / KEY / "sched"
    assert result.built and result.directory == where
    assert fake.fetches == ["http://m/debian"]
    assert fake.makes[0][1] == kroot / KEY / "vmlinux"
    assert sorted(p.name for p in where.iterdir()) == sorted(
        [*scache.EXAMPLE_SCHEDULERS, "bpftool", "build.log", "sched.json"])
    manifest = json.loads((where / "sched.json").read_text())
    assert manifest["source_package"] == "linux-source-7.2"
    assert manifest["source_version"] == "7.2.13-1"
    assert manifest["kernel"] == KEY and "built_at" in manifest
    assert set(manifest["tools"]) == {"clang", "bpf_clang", "make", "bpftool"}
    assert manifest["tools"]["bpftool"] == "bpftool v7.8.0"
    assert not list((kroot / KEY).glob(".tmp-*"))  # the work directory is gone
    assert scache.cached_binaries(kernel)["scx_qmap"] == where / "scx_qmap"


def test_second_build_is_skipped_and_force_rebuilds(kroot: Path, toolchain_ok: None) -> None:
    kernel = add_kernel(kroot)
    fake = FakeBuild()
    fake.run(kernel)
    again = fake.run(kernel)
    assert not again.built and len(fake.makes) == 1
    assert again.manifest["source_version"] == "7.2.13-1"
    forced = fake.run(kernel, force=True)
    assert forced.built and len(fake.makes) == 2
    assert "echo scx_simple 2" in (kroot / KEY / "sched/scx_simple").read_text()


def test_incomplete_sched_dir_is_rebuilt(kroot: Path, toolchain_ok: None) -> None:
    kernel = add_kernel(kroot)
    fake = FakeBuild()
    fake.run(kernel)
    (kroot / KEY / "sched/scx_flatcg").unlink()
    assert fake.run(kernel).built and len(fake.makes) == 2


def test_sched_dir_from_a_clang19_bpf_build_is_rebuilt(kroot: Path,
                                                       toolchain_ok: None) -> None:
    kernel = add_kernel(kroot)
    fake = FakeBuild()
    fake.run(kernel)
    manifest_path = kroot / KEY / "sched/sched.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["tools"]["bpf_clang"]  # as written before BPF moved to zig's clang
    manifest_path.write_text(json.dumps(manifest))
    assert not sbuild.is_complete(kernel)
    assert fake.run(kernel).built and len(fake.makes) == 2
    assert sbuild.is_complete(kernel)


def test_failed_build_keeps_the_old_directory(kroot: Path, toolchain_ok: None) -> None:
    kernel = add_kernel(kroot)
    FakeBuild().run(kernel)
    before = (kroot / KEY / "sched/sched.json").read_text()
    with pytest.raises(KernelError, match="scx_central"):
        FakeBuild(missing="scx_central").run(kernel, force=True)
    assert (kroot / KEY / "sched/sched.json").read_text() == before
    assert not list((kroot / KEY).glob(".tmp-*"))


def test_kernel_without_sched_ext_or_vmlinux_is_refused(kroot: Path, toolchain_ok: None) -> None:
    fake = FakeBuild()
    with pytest.raises(KernelError, match="CONFIG_SCHED_CLASS_EXT"):
        fake.run(add_kernel(kroot, "7.1.1+deb14-amd64", sched_ext=False))
    with pytest.raises(KernelError, match="no BTF vmlinux"):
        fake.run(add_kernel(kroot, "7.1.2+deb14-amd64", vmlinux=False))
    assert fake.fetches == []


def test_kernel_given_by_path_is_refused(tmp_path: Path, toolchain_ok: None) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(b"MZ")
    kernel = Kernel(key=str(image), version="7.2.0", image=image, config=None,
                    modules_dir=None, vmlinux=None)
    with pytest.raises(ConfigError, match="not a cached kernel"):
        FakeBuild().run(kernel)


# -- discover ----------------------------------------------------------------------------

def test_discover_prefers_the_kernel_cache_then_path(kroot: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     toolchain_ok: None) -> None:
    kernel = add_kernel(kroot)
    bindir = tmp_path / "bin"
    on_path = executable(bindir / "scx_simple")
    rusty = executable(bindir / "scx_rusty")
    monkeypatch.setenv("PATH", str(bindir))
    assert scache.discover("scx_simple", kernel) == on_path  # nothing built yet
    FakeBuild().run(kernel)
    assert scache.discover("scx_simple", kernel) == kroot / KEY / "sched/scx_simple"
    assert scache.discover("scx_simple", None) == on_path
    assert scache.discover("scx_rusty", kernel) == rusty
    assert scache.discover("scx_nope", kernel) is None


def test_discover_ignores_non_executables(kroot: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = add_kernel(kroot)
    (kroot / KEY / "sched").mkdir()
    (kroot / KEY / "sched/scx_simple").write_text("not executable")
    os.chmod(kroot / KEY / "sched/scx_simple", 0o644)
    assert scache.discover("scx_simple", kernel) is None


def test_find_scheduler_binary(kroot: Path, tmp_path: Path, toolchain_ok: None) -> None:
    kernel = add_kernel(kroot)
    with pytest.raises(ConfigError, match=r"'scx_simple' not found.*ktstr sched build"):
        scache.find_scheduler_binary(SchedulerSpec.discover("scx_simple"), kernel)
    FakeBuild().run(kernel)
    assert scache.find_scheduler_binary(SchedulerSpec.discover("scx_simple"), kernel) == (
        kroot / KEY / "sched/scx_simple")
    mine = executable(tmp_path / "mine" / "scx_mine")
    assert scache.find_scheduler_binary(SchedulerSpec.path(str(mine)), None) == mine
    with pytest.raises(ConfigError, match="does not exist"):
        scache.find_scheduler_binary(SchedulerSpec.path(str(tmp_path / "nope")), None)
    with pytest.raises(ConfigError, match="no binary"):
        scache.find_scheduler_binary(SchedulerSpec.eevdf(), kernel)


def test_path_schedulers_first_wins_and_only_scx(tmp_path: Path) -> None:
    a = executable(tmp_path / "a" / "scx_lavd")
    executable(tmp_path / "b" / "scx_lavd")
    b = executable(tmp_path / "b" / "scx_rusty")
    executable(tmp_path / "b" / "bash")
    (tmp_path / "b" / "scx_data").write_text("")
    found = scache.path_schedulers(os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b"),
                                                    str(tmp_path / "missing")]))
    assert found == {"scx_lavd": a, "scx_rusty": b}
