import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_fakes import make_elf, make_module, xz

from ktstr.errors import KernelError
from ktstr.vm import kmod
from ktstr.vm.elfsections import ElfFormatError, section_bytes, sections


def test_sections_of_synthetic_elf():
    elf = make_elf({".text": b"\xc3", ".modinfo": b"a=b\0"})
    assert set(sections(elf)) == {".text", ".modinfo", ".shstrtab"}
    assert section_bytes(elf, ".modinfo") == b"a=b\0"
    assert section_bytes(elf, ".BTF") is None


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf is not installed")
def test_sections_match_readelf_on_the_python_binary():
    exe = Path(sys.executable).resolve()
    out = subprocess.run(["readelf", "-SW", str(exe)], capture_output=True, text=True,
                         check=True).stdout
    names = {line.split("]", 1)[1].split()[0] for line in out.splitlines()
             if line.strip().startswith("[") and "]" in line and line.split("]", 1)[1].strip()}
    names.discard("Name")
    assert names and names <= set(sections(exe.read_bytes())) | {"NULL"}


def test_sections_rejects_non_elf():
    with pytest.raises(ElfFormatError):
        sections(b"MZ\x90\x00" + bytes(100))


def test_modinfo_depends_from_section():
    ko = make_module("9p", ["9pnet", "netfs"])
    assert kmod.modinfo(ko)["name"] == "9p"
    assert kmod.module_depends(ko) == ["9pnet", "netfs"]


def test_modinfo_falls_back_to_scanning_broken_elf():
    ko = b"\x7fELF" + bytes(60) + b"junk\0depends=a-b,c\0name=x\0"
    assert kmod.module_depends(ko) == ["a_b", "c"]


def test_module_depends_empty_field():
    assert kmod.module_depends(make_module("netfs", [])) == []


def test_module_name_normalises_suffix_and_dashes():
    assert kmod.module_name("kernel/fs/9p/9p.ko.xz") == "9p"
    assert kmod.module_name("kernel/x/intel-uncore.ko") == "intel_uncore"
    assert kmod.module_name("fs/overlayfs/overlay.o") == "overlay"


def write_tree(root, modules, builtin=()):
    """modules: name -> (relative dir, depends); written as .ko.xz like Debian ships them."""
    order = []
    for name, (rel, deps) in modules.items():
        path = root / rel / f"{name}.ko.xz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(xz(make_module(name, deps)))
        order.append(f"{rel}/{name}.ko")
    (root / "modules.order").write_text("\n".join(order) + "\n")
    (root / "modules.builtin").write_text("".join(f"kernel/drivers/{b}.ko\n" for b in builtin))


def test_load_order_is_dependency_first_and_skips_builtin(tmp_path):
    write_tree(tmp_path, {
        "9p": ("kernel/fs/9p", ["9pnet", "netfs"]),
        "9pnet_virtio": ("kernel/net/9p", ["9pnet", "virtio_ring"]),
        "9pnet": ("kernel/net/9p", ["netfs"]),
        "netfs": ("kernel/fs/netfs", []),
        "unrelated": ("kernel/x", []),
    }, builtin=["virtio_ring", "overlay"])
    index = kmod.index_modules(tmp_path)
    order = kmod.load_order(["9p", "9pnet_virtio", "overlay"], index, kmod.read_builtin(tmp_path))
    names = [n for n, _ in order]
    assert names == ["netfs", "9pnet", "9p", "9pnet_virtio"]
    assert all(ko[:4] == b"\x7fELF" for _, ko in order)  # decompressed
    assert kmod.modinfo(dict(order)["9p"])["name"] == "9p"


def test_load_order_missing_dependency_names_who_needs_it(tmp_path):
    write_tree(tmp_path, {"9p": ("kernel/fs/9p", ["9pnet"])})
    with pytest.raises(KernelError, match=r"9pnet \(needed by 9p\).*hint"):
        kmod.load_order(["9p"], kmod.index_modules(tmp_path))


def test_load_order_cycle_raises(tmp_path):
    write_tree(tmp_path, {"a": ("k", ["b"]), "b": ("k", ["a"])})
    with pytest.raises(KernelError, match=r"cycle"):
        kmod.load_order(["a"], kmod.index_modules(tmp_path))


def test_index_modules_of_built_tree_lists_dot_o(tmp_path):
    (tmp_path / "fs/9p").mkdir(parents=True)
    (tmp_path / "fs/9p/9p.ko").write_bytes(make_module("9p", []))
    (tmp_path / "modules.order").write_text("fs/9p/9p.o\nfs/missing/gone.o\n")
    assert kmod.index_modules(tmp_path) == {"9p": tmp_path / "fs/9p/9p.ko"}


def test_install_and_read_load_order(tmp_path):
    modules = [("netfs", b"\x7fELF1"), ("9p", b"\x7fELF2")]
    paths = kmod.install_modules(modules, tmp_path / "m")
    assert (tmp_path / "m" / "load-order").read_text() == "netfs.ko\n9p.ko\n"
    assert kmod.read_load_order(tmp_path / "m") == paths
    assert paths[1].read_bytes() == b"\x7fELF2"
