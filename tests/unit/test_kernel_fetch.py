"""fetch_kernel end to end against package files built here, with apt's network part faked.

The fake AptSession serves `.deb` files made by `dpkg-deb -b` that are laid out like
Debian's kernel packages, so unpacking, sched_ext selection, vmlinux extraction, module
closure, metadata and the cache lock all run for real.
"""

import json
import os
import shutil
import subprocess
import time

import pytest
from kernel_fakes import (
    CONFIG_SCX,
    fake_vmlinux,
    make_bzimage,
    make_cache_entry,
    make_module,
    xz,
    zstd,
)

from ktstr.errors import KernelError
from ktstr.vm import debian
from ktstr.vm.kernel import cache_lock, kernel_cache_root, list_kernels
from ktstr.vm.kernel_fetch import fetch_kernel

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

MIRROR = "file:/nonexistent/debian"
NEW_NO_SCX = "7.3.1+deb14-amd64"
OLD_SCX = "7.2.13+deb14-amd64"


def build_deb(out_dir, package, files):
    root = out_dir / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: amd64\n"
        "Maintainer: ktstr tests <t@example>\nDescription: fake kernel part\n")
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    deb = out_dir / f"{package}_1.0-1_amd64.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "--root-owner-group", "-b", str(root), str(deb)],
                   check=True, capture_output=True)
    shutil.rmtree(root)
    return deb


def build_kernel_debs(out_dir, version, config):
    mod = f"usr/lib/modules/{version}"
    modules = {"netfs": ("fs/netfs", []), "9pnet": ("net/9p", ["netfs"]),
               "9pnet_virtio": ("net/9p", ["9pnet", "virtio_ring"]),
               "9p": ("fs/9p", ["9pnet", "netfs"]), "unrelated": ("drivers/x", []),
               "virtio_blk": ("drivers/block", [])}
    kos = {f"{mod}/kernel/{rel}/{n}.ko.xz": xz(make_module(n, deps))
           for n, (rel, deps) in modules.items()}
    order = "".join(f"kernel/{rel}/{n}.ko\n" for n, (rel, _) in modules.items())
    image = make_bzimage(zstd(fake_vmlinux()), version=version)
    build_deb(out_dir, f"linux-binary-unsigned-{version}", {f"{mod}/vmlinuz.unsigned": image})
    build_deb(out_dir, f"linux-base-{version}", {
        f"{mod}/config": config.encode(),
        f"{mod}/modules.order": order.encode(),
        f"{mod}/modules.builtin": b"kernel/drivers/virtio/virtio_ring.ko\n",
        f"{mod}/System.map": b"placeholder\n"})
    build_deb(out_dir, f"linux-modules-{version}", kos)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("debs")
    build_kernel_debs(out, NEW_NO_SCX, "# CONFIG_SCHED_CLASS_EXT is not set\nCONFIG_9P_FS=m\n"
                      "CONFIG_NETFS_SUPPORT=m\nCONFIG_NET_9P=m\nCONFIG_NET_9P_VIRTIO=m\n"
                      "CONFIG_OVERLAY_FS=y\n")
    build_kernel_debs(out, OLD_SCX, CONFIG_SCX + "CONFIG_VIRTIO_BLK=m\n")
    return out


class FakeApt:
    """Stands in for debian.AptSession: same methods, package files from `repo`."""

    repo = None
    log = None  # a file each call is appended to, shared across processes

    def __init__(self, state_dir, mirror, suite="sid"):
        self.state_dir, self.mirror, self.suite = state_dir, mirror, suite

    def _note(self, what):
        with open(self.log, "a") as f:
            f.write(what + "\n")

    def update(self):
        self._note("update")

    def pkgnames(self, prefix):
        return [p.name.split("_")[0] for p in self.repo.glob(prefix + "*.deb")] + [
            prefix + "7.3.1+deb14-cloud-amd64"]

    def download(self, packages, dest):
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for pkg in packages:
            self._note("download " + pkg)
            src = next(self.repo.glob(f"{pkg}_*.deb"))
            out.append(dest / src.name)
            shutil.copyfile(src, out[-1])
        time.sleep(0.05)
        return out


@pytest.fixture
def fake_apt(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(FakeApt, "repo", repo)
    monkeypatch.setattr(FakeApt, "log", tmp_path / "apt.log")
    monkeypatch.setattr(debian, "AptSession", FakeApt)
    return tmp_path / "apt.log"


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_fetch_newest_skips_kernel_without_sched_ext(fake_apt, tmp_path):
    k = fetch_kernel(mirror=MIRROR)
    assert k.key == OLD_SCX and k.has_sched_ext
    # The newer kernel cost only its small base package.
    assert calls(fake_apt) == [
        "update", f"download linux-base-{NEW_NO_SCX}", f"download linux-base-{OLD_SCX}",
        f"download linux-binary-unsigned-{OLD_SCX}", f"download linux-modules-{OLD_SCX}"]
    entry = k.image.parent
    assert sorted(p.name for p in entry.iterdir()) == [
        "config", "kernel.json", "modules", "vmlinux", "vmlinuz"]
    assert k.vmlinux is not None and k.vmlinux.read_bytes() == fake_vmlinux()
    assert [p.name for p in k.vm_modules()] == ["netfs.ko", "9pnet.ko", "9pnet_virtio.ko", "9p.ko",
                                                "virtio_blk.ko"]
    assert k.vm_modules()[0].read_bytes()[:4] == b"\x7fELF"
    assert k.drives_scratch_disk
    meta = json.loads((entry / "kernel.json").read_text())
    assert meta["version"] == OLD_SCX and meta["mirror"] == MIRROR and meta["sched_ext"]
    assert meta["packages"][f"linux-modules-{OLD_SCX}"] == "1.0-1"
    assert meta["vmlinux_btf"] is True and len(meta["vmlinuz_sha256"]) == 64
    leftovers = [p.name for p in entry.parent.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == [] and not list(entry.parent.rglob("*.deb"))


def test_fetch_explicit_version_takes_it_without_sched_ext(fake_apt):
    k = fetch_kernel("7.3", mirror=MIRROR)
    assert k.key == NEW_NO_SCX and not k.has_sched_ext
    assert not k.drives_scratch_disk  # its config has no CONFIG_VIRTIO_BLK: none wanted


def test_fetch_adds_the_scratch_disk_module_to_an_entry_made_before_it(fake_apt):
    k = fetch_kernel(mirror=MIRROR)
    assert k.modules_dir is not None
    (k.modules_dir / "virtio_blk.ko").unlink()  # as an older ktstr left the entry
    (k.modules_dir / "load-order").write_text("netfs.ko\n9pnet.ko\n9pnet_virtio.ko\n9p.ko\n")
    assert not k.drives_scratch_disk
    fake_apt.unlink()
    k = fetch_kernel("7.2", mirror=MIRROR)
    assert calls(fake_apt) == ["update", f"download linux-base-{OLD_SCX}",
                               f"download linux-modules-{OLD_SCX}"]
    assert [p.name for p in k.vm_modules()][-2:] == ["9p.ko", "virtio_blk.ko"]
    assert k.drives_scratch_disk
    assert json.loads((k.image.parent / "kernel.json").read_text())["modules"][-1] == "virtio_blk"
    fake_apt.unlink()
    fetch_kernel("7.2", mirror=MIRROR)  # complete now: no apt at all
    assert calls(fake_apt) == []


def test_fetch_cached_version_needs_no_apt(fake_apt):
    fetch_kernel(mirror=MIRROR)
    fake_apt.unlink()
    assert fetch_kernel("7.2", mirror=MIRROR).key == OLD_SCX
    assert calls(fake_apt) == []


def test_fetch_unknown_version_names_it(fake_apt):
    with pytest.raises(KernelError, match=r"no generic amd64 kernel matching '7\.4'"):
        fetch_kernel("7.4", mirror=MIRROR)


def _child_fetch(version, go_fd=None):
    """Fork a process that fetches (after a byte arrives on `go_fd`, if given).

    The child is forked before any lock is taken: a forked child would share the
    parent's lock (flock belongs to the open file, which fork duplicates).
    """
    pid = os.fork()
    if pid == 0:
        try:
            if go_fd is not None:
                os.read(go_fd, 1)
            k = fetch_kernel(version, mirror=MIRROR)
            os._exit(0 if k.key == OLD_SCX else 3)
        except BaseException:
            os._exit(4)
    return pid


def _exit_code(pid, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"fetching child {pid} still running after {timeout} s")


def test_concurrent_fetches_download_once(fake_apt):
    pids = [_child_fetch(None) for _ in range(2)]
    assert [_exit_code(p) for p in pids] == [0, 0]
    downloads = [c for c in calls(fake_apt) if c.startswith(f"download linux-modules-{OLD_SCX}")]
    assert len(downloads) == 1
    assert [k.key for k in list_kernels()] == [OLD_SCX]


def test_waiting_fetcher_finds_kernel_cached_by_lock_holder(fake_apt):
    go_r, go_w = os.pipe()
    pid = _child_fetch("7.2", go_r)
    try:
        with cache_lock():
            os.write(go_w, b"x")
            time.sleep(0.3)  # the child found nothing cached and now waits for the lock
            make_cache_entry(kernel_cache_root(), OLD_SCX)
    finally:
        os.close(go_r)
        os.close(go_w)
    assert _exit_code(pid) == 0
    assert calls(fake_apt) == []  # it never ran apt
