import os

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
