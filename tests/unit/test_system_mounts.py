"""ktstr.system.mounts: the filesystem type of the mount holding a path."""

from __future__ import annotations

from pathlib import Path

from ktstr.system.mounts import mount_fstype, parse_mountinfo_fstype


def test_fstype_takes_the_longest_mount_point() -> None:
    info = ("22 1 0:21 / / rw - ext4 /dev/vda rw\n"
            "30 22 0:30 / /tmp rw,nosuid - tmpfs tmpfs rw\n"
            "31 22 0:31 / /tmpx rw - xfs /dev/vdb rw\n"
            "32 22 0:32 / /my\\040disk rw - btrfs /dev/vdc rw\n")
    assert parse_mountinfo_fstype("/tmp/a/b", info) == "tmpfs"
    assert parse_mountinfo_fstype("/tmpx", info) == "xfs"
    assert parse_mountinfo_fstype("/usr", info) == "ext4"
    assert parse_mountinfo_fstype("/my disk/f", info) == "btrfs"
    assert parse_mountinfo_fstype("/x", "") == "unknown"


def test_mount_fstype_of_proc_is_proc_and_reads_a_fake_tree(tmp_path: Path) -> None:
    assert mount_fstype("/proc/self") == "proc"
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text("22 1 0:21 / / rw - overlay overlay rw\n")
    assert mount_fstype("/anything", tmp_path) == "overlay"
