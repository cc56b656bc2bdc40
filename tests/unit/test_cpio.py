import io
import shutil
import subprocess

import pytest

from ktstr.vm.cpio import CpioWriter


def test_archive_lists_back_with_cpio_tool(tmp_path):
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.file("bin/busybox", b"\x7fELF-not-really", 0o755)
    w.file("init", b"#!/bin/sh\n", 0o755)
    w.symlink("bin/sh", "busybox")
    w.close()
    data = buf.getvalue()
    assert len(data) % 4 == 0
    if shutil.which("cpio") is None:
        pytest.skip("the cpio tool is not installed")
    out = subprocess.run(["cpio", "-t"], input=data, capture_output=True, check=True)
    names = out.stdout.decode().split()
    assert names == ["bin", "bin/busybox", "init", "bin/sh"]


def test_same_inputs_give_same_bytes():
    def build():
        buf = io.BytesIO()
        w = CpioWriter(buf)
        w.file("a/b", b"x")
        w.close()
        return buf.getvalue()

    assert build() == build()


def test_directories_keep_their_mode_and_files_their_mtime(tmp_path):
    if shutil.which("cpio") is None:
        pytest.skip("the cpio tool is not installed")
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.directory("t", 0o700, 1_000_000)
    w.file("t/a.py", b"x = 1\n", 0o644, 1_234_567_890)
    w.close()
    subprocess.run(["cpio", "-idm", "--quiet"], input=buf.getvalue(), cwd=tmp_path, check=True)
    assert (tmp_path / "t").stat().st_mode & 0o777 == 0o700
    assert int((tmp_path / "t/a.py").stat().st_mtime) == 1_234_567_890
