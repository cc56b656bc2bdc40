import gzip

import pytest
from kernel_fakes import fake_vmlinux, make_bzimage, xz, zstd

from ktstr.errors import KernelError
from ktstr.vm.bzimage import check_bzimage, extract_vmlinux, image_version, is_bzimage
from ktstr.vm.elfsections import sections


@pytest.mark.parametrize("compress", [zstd, xz, gzip.compress], ids=["zstd", "xz", "gzip"])
def test_extract_vmlinux_from_header_payload(compress):
    elf = fake_vmlinux()
    assert extract_vmlinux(make_bzimage(compress(elf))) == elf


def test_extract_vmlinux_scans_magic_past_a_decoy_for_old_boot_protocol():
    elf = fake_vmlinux()
    decoy = b"\x28\xb5\x2f\xfd" + b"not a zstd frame" * 4  # zstd magic followed by garbage
    image = make_bzimage(zstd(elf), protocol=0x207, stub=decoy)
    assert extract_vmlinux(image) == elf


def test_extracted_vmlinux_keeps_btf_section():
    vmlinux = extract_vmlinux(make_bzimage(zstd(fake_vmlinux())))
    assert ".BTF" in sections(vmlinux)


def test_extract_vmlinux_rejects_payload_that_is_not_elf():
    with pytest.raises(KernelError, match=r"no vmlinux found.*hint"):
        extract_vmlinux(make_bzimage(zstd(b"just some bytes, not an ELF" * 10)))


def test_image_version_reads_header_string():
    assert image_version(make_bzimage(b"", version="7.2.13+deb14-amd64")) == "7.2.13+deb14-amd64"
    assert image_version(b"\0" * 1024) is None


def test_check_bzimage_accepts_hdrs_and_rejects_elf(tmp_path):
    good = tmp_path / "bzImage"
    good.write_bytes(make_bzimage(b"x"))
    assert is_bzimage(check_bzimage(good))
    bad = tmp_path / "vmlinux"
    bad.write_bytes(fake_vmlinux())
    with pytest.raises(KernelError, match=r"vmlinux is not a bzImage \(no \"HdrS\".*hint"):
        check_bzimage(bad)


def test_check_bzimage_short_file(tmp_path):
    short = tmp_path / "tiny"
    short.write_bytes(b"HdrS")
    with pytest.raises(KernelError, match=r"not a bzImage"):
        check_bzimage(short)
