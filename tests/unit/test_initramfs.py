import os
import threading

import pytest

from ktstr.guest import init
from ktstr.protocol import MODULES_LOADED
from ktstr.vm import initramfs


def test_old_images_are_pruned_newest_kept(tmp_path):
    for i in range(initramfs.KEEP + 3):
        f = tmp_path / f"initramfs-{i:02d}.cpio"
        f.write_bytes(b"x")
        os.utime(f, (1000 + i, 1000 + i))
    (tmp_path / "agent-tree-x.json").write_text("[]")
    initramfs._prune(tmp_path)
    left = sorted(p.name for p in tmp_path.glob("initramfs-*.cpio"))
    assert left == [f"initramfs-{i:02d}.cpio" for i in range(3, initramfs.KEEP + 3)]
    assert (tmp_path / "agent-tree-x.json").exists()


def test_init_execs_the_agent_from_ram_without_mounting_the_host():
    script = initramfs.INIT_SCRIPT
    assert 'exec "$PY" -m ktstr.guest' in script
    assert "9p" not in script and "switch_root" not in script  # the agent mounts it later


def test_init_loads_modules_in_the_background_and_marks_the_end():
    script = initramfs.INIT_SCRIPT
    assert f": > {MODULES_LOADED}" in script
    assert ") < /modules/load-order &" in script  # not /dev/null, which pins /dev
    assert script.index(") < /modules/load-order &") < script.index('exec "$PY"')


def _marks(monkeypatch, tmp_path):
    loaded, failed = tmp_path / "loaded", tmp_path / "failed"
    monkeypatch.setattr(init, "MODULES_LOADED", str(loaded))
    monkeypatch.setattr(init, "MODULES_FAILED", str(failed))
    return loaded, failed


def test_the_agent_waits_for_the_modules(monkeypatch, tmp_path):
    loaded, _ = _marks(monkeypatch, tmp_path)
    threading.Timer(0.05, loaded.touch).start()
    init.wait_for_modules(timeout_s=5)
    assert loaded.exists()


def test_a_failed_module_stops_the_boot_naming_it(monkeypatch, tmp_path):
    _, failed = _marks(monkeypatch, tmp_path)
    failed.write_text("insmod 9p.ko failed: Unknown symbol\n")
    with pytest.raises(RuntimeError, match=r"insmod 9p\.ko failed: Unknown symbol"):
        init.wait_for_modules(timeout_s=5)


def test_modules_that_never_come_end_the_wait(monkeypatch, tmp_path):
    _marks(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError, match="not loaded within"):
        init.wait_for_modules(timeout_s=0.05)
