from pathlib import Path

from ktstr.system.hugepages import parse_hugetlbfs_mounts, parse_meminfo

MEMINFO = """MemTotal:        8123456 kB
HugePages_Total:     512
HugePages_Free:      500
HugePages_Rsvd:       10
HugePages_Surp:        0
Hugepagesize:       2048 kB
"""

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / /dev/hugepages rw,relatime shared:20 - hugetlbfs hugetlbfs rw,pagesize=2M
41 22 0:41 / /mnt/huge\\0401g rw,relatime shared:21 - hugetlbfs none rw,pagesize=1024M
42 22 0:42 / /mnt/default rw,relatime shared:22 - hugetlbfs none rw
43 22 0:43 / /dev/shm rw,nosuid shared:23 - tmpfs tmpfs rw
"""


def test_meminfo_numbers_without_their_unit():
    info = parse_meminfo(MEMINFO)
    assert info["HugePages_Free"] == 500 and info["Hugepagesize"] == 2048
    assert info["MemTotal"] == 8123456


def test_hugetlbfs_mounts_with_their_page_size_the_default_when_unsaid():
    assert parse_hugetlbfs_mounts(MOUNTINFO, 2048) == [
        (Path("/dev/hugepages"), 2048), (Path("/mnt/huge 1g"), 1 << 20),
        (Path("/mnt/default"), 2048)]
