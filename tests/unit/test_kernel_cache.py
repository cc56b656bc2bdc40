import pytest
from kernel_fakes import fake_vmlinux, make_bzimage, make_cache_entry, make_module, zstd

from ktstr.errors import KernelError
from ktstr.vm.kernel import (
    Kernel,
    clean_kernels,
    kernel_cache_root,
    list_kernels,
    resolve_kernel,
)


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "kernels"
    root.mkdir(parents=True)
    return root


def test_cache_root_follows_env(kernels):
    assert kernel_cache_root() == kernels


def test_resolve_none_takes_newest_version_not_newest_name(kernels):
    for key in ("7.9.1+deb14-amd64", "7.10.2+deb14-amd64", "7.2.13+deb14-amd64"):
        make_cache_entry(kernels, key)
    assert resolve_kernel(None).key == "7.10.2+deb14-amd64"
    assert [k.key for k in list_kernels()] == [
        "7.10.2+deb14-amd64", "7.9.1+deb14-amd64", "7.2.13+deb14-amd64"]


def test_resolve_none_with_empty_cache_hints_fetch(kernels):
    with pytest.raises(KernelError, match=r"none cached.*hint: run `ktstr kernel fetch`"):
        resolve_kernel(None)


def test_resolve_version_prefix_respects_component_boundary(kernels):
    make_cache_entry(kernels, "7.2.13+deb14-amd64")
    make_cache_entry(kernels, "7.20.1+deb14-amd64")
    assert resolve_kernel("7.2").key == "7.2.13+deb14-amd64"
    assert resolve_kernel("7.2.13").key == "7.2.13+deb14-amd64"
    assert resolve_kernel("7").key == "7.20.1+deb14-amd64"
    assert resolve_kernel("7.20.1+deb14-amd64").key == "7.20.1+deb14-amd64"


def test_resolve_unknown_names_spec_and_cached_keys(kernels):
    make_cache_entry(kernels, "7.2.13+deb14-amd64")
    with pytest.raises(KernelError) as info:
        resolve_kernel("7.3")
    msg = str(info.value)
    assert "'7.3'" in msg and "cached: 7.2.13+deb14-amd64" in msg
    assert "hint: run `ktstr kernel fetch 7.3`" in msg


def test_incomplete_entries_and_dot_dirs_are_not_kernels(kernels):
    make_cache_entry(kernels, "7.2.13+deb14-amd64")
    (kernels / "7.9.9-half").mkdir()  # no kernel.json
    (kernels / ".tmp-abc").mkdir()
    (kernels / ".apt").mkdir()
    assert [k.key for k in list_kernels()] == ["7.2.13+deb14-amd64"]


def test_cached_kernel_config_modules_and_sched_ext(kernels):
    make_cache_entry(kernels, "7.2.13+deb14-amd64", modules=("netfs", "9pnet", "9p"))
    k = resolve_kernel("7.2")
    assert k.has_sched_ext
    assert k.config_value("CONFIG_LOCALVERSION") == "-test"
    assert k.config_value("NET_9P") == "m"
    assert k.config_value("CONFIG_FOO") is None
    assert [p.name for p in k.vm_modules()] == ["netfs.ko", "9pnet.ko", "9p.ko"]
    assert all(p.is_file() for p in k.vm_modules())
    assert k.vmlinux is not None and k.vmlinux.is_file()


def test_kernel_without_sched_ext(kernels):
    make_cache_entry(kernels, "6.1.0-18-amd64", config="# CONFIG_SCHED_CLASS_EXT is not set\n")
    assert not resolve_kernel("6.1").has_sched_ext


def test_resolve_bzimage_path_takes_config_beside_it(tmp_path, kernels):
    image = tmp_path / "boot" / "bzImage"
    image.parent.mkdir()
    image.write_bytes(make_bzimage(zstd(fake_vmlinux()), version="7.5.0-mine"))
    (tmp_path / "boot" / ".config").write_text("CONFIG_SCHED_CLASS_EXT=y\n")
    k = resolve_kernel(str(image))
    assert (k.key, k.version, k.image) == (str(image), "7.5.0-mine", image)
    assert k.has_sched_ext and k.modules_dir is None and k.vm_modules() == []


def test_resolve_path_that_is_not_a_bzimage(tmp_path, kernels):
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(fake_vmlinux())
    with pytest.raises(KernelError, match=r"is not a bzImage"):
        resolve_kernel(str(vmlinux))


def test_resolve_missing_path(tmp_path, kernels):
    with pytest.raises(KernelError, match=r"not found.*no such file"):
        resolve_kernel(str(tmp_path / "nope" / "bzImage"))


def test_resolve_built_tree_computes_modules_from_its_config(tmp_path, kernels):
    tree = tmp_path / "linux"
    (tree / "arch/x86/boot").mkdir(parents=True)
    (tree / "arch/x86/boot/bzImage").write_bytes(make_bzimage(b"", version="7.6.0-rc1"))
    (tree / "include/config").mkdir(parents=True)
    (tree / "include/config/kernel.release").write_text("7.6.0-rc1+\n")
    (tree / ".config").write_text("CONFIG_SCHED_CLASS_EXT=y\nCONFIG_NETFS_SUPPORT=y\n"
                                  "CONFIG_NET_9P=m\nCONFIG_NET_9P_VIRTIO=m\nCONFIG_9P_FS=m\n"
                                  "CONFIG_OVERLAY_FS=y\n")
    (tree / "vmlinux").write_bytes(fake_vmlinux())
    for rel, name, deps in (("net/9p", "9pnet", []), ("net/9p", "9pnet_virtio", ["9pnet"]),
                            ("fs/9p", "9p", ["9pnet"])):
        (tree / rel).mkdir(parents=True, exist_ok=True)
        (tree / rel / f"{name}.ko").write_bytes(make_module(name, deps))
    (tree / "modules.order").write_text("fs/9p/9p.o\nnet/9p/9pnet.o\nnet/9p/9pnet_virtio.o\n")
    k = resolve_kernel(str(tree))
    assert k.version == "7.6.0-rc1+" and k.vmlinux == tree / "vmlinux"
    assert [p.relative_to(tree).as_posix() for p in k.vm_modules()] == [
        "net/9p/9pnet.ko", "net/9p/9pnet_virtio.ko", "fs/9p/9p.ko"]
    assert not k.drives_scratch_disk  # no CONFIG_VIRTIO_BLK: the VM gets no disk
    (tree / ".config").write_text((tree / ".config").read_text() + "CONFIG_VIRTIO_BLK=m\n")
    (tree / "drivers/block").mkdir(parents=True)
    (tree / "drivers/block/virtio_blk.ko").write_bytes(make_module("virtio_blk", []))
    (tree / "modules.order").write_text((tree / "modules.order").read_text()
                                        + "drivers/block/virtio_blk.o\n")
    k = resolve_kernel(str(tree))
    assert k.vm_modules()[-1] == tree / "drivers/block/virtio_blk.ko"
    assert k.drives_scratch_disk


def test_resolve_directory_that_is_not_a_tree(tmp_path, kernels):
    with pytest.raises(KernelError, match=r"not a built kernel tree"):
        resolve_kernel(str(tmp_path))


def test_clean_selected_and_all(kernels):
    for key in ("7.2.13+deb14-amd64", "7.9.1+deb14-amd64"):
        make_cache_entry(kernels, key)
    (kernels / ".apt" / "lists").mkdir(parents=True)
    assert clean_kernels(["7.9.1+deb14-amd64"]) == ["7.9.1+deb14-amd64"]
    assert [k.key for k in list_kernels()] == ["7.2.13+deb14-amd64"]
    assert (kernels / ".apt").exists()
    assert clean_kernels() == ["7.2.13+deb14-amd64"]
    assert list_kernels() == [] and not (kernels / ".apt").exists()
    assert [p.name for p in kernels.iterdir()] == [".lock"]


def test_clean_unknown_key_removes_nothing(kernels):
    make_cache_entry(kernels, "7.2.13+deb14-amd64")
    with pytest.raises(KernelError, match=r"no cached kernel '7.3'.*cached: 7.2.13"):
        clean_kernels(["7.2.13+deb14-amd64", "7.3"])
    assert len(list_kernels()) == 1


def test_kernel_is_frozen(kernels):
    make_cache_entry(kernels, "7.2.13+deb14-amd64")
    k = resolve_kernel(None)
    assert isinstance(k, Kernel)
    with pytest.raises(AttributeError):
        k.key = "x"  # type: ignore[misc]
