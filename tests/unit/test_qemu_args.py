from dataclasses import replace
from pathlib import Path

import pytest

from ktstr.settings import settings
from ktstr.topology import Topology
from ktstr.vm.machine import SCRATCH_DISK_MB, VmSpec, create_scratch_image, qemu_args
from ktstr.vm.qemu import QemuArgs, QemuBinary, escape, split_memory


def _opt(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_escape_doubles_commas():
    assert escape("/tmp/a,b") == "/tmp/a,,b"


def test_topology_gives_sockets_per_llc_and_one_backend_per_node(tmp_path):
    q = QemuArgs(Path("/usr/bin/qemu-system-x86_64"))
    files = q.topology(Topology.parse("2n4l2c2t"), 2049, tmp_path, "run1")
    argv = q.argv()
    assert _opt(argv, "-smp") == ["cpus=16,sockets=4,dies=1,cores=2,threads=2"]
    assert _opt(argv, "-m") == ["2049M"]
    assert _opt(argv, "-numa") == ["node,nodeid=0,cpus=0-7,memdev=mem0",
                                   "node,nodeid=1,cpus=8-15,memdev=mem1"]
    objs = _opt(argv, "-object")
    assert objs[0] == (f"memory-backend-file,id=mem0,size=1025M,"
                       f"mem-path={tmp_path}/ktstr-run1-node0,share=on")
    assert "size=1024M" in objs[1]
    assert files == [tmp_path / "ktstr-run1-node0", tmp_path / "ktstr-run1-node1"]


def test_memory_split_keeps_the_total():
    assert sum(split_memory(2049, 4)) == 2049
    assert split_memory(2048, 1) == [2048]


def test_tcg_uses_multithreaded_translation_unless_asked_for_one_thread():
    argv = QemuArgs(Path("qemu")).machine("tcg").argv()
    assert _opt(argv, "-accel") == ["tcg,thread=multi"]
    argv = QemuArgs(Path("qemu")).machine("tcg", "single").argv()
    assert _opt(argv, "-accel") == ["tcg,thread=single"]
    with pytest.raises(ValueError, match="'two'"):
        QemuArgs(Path("qemu")).machine("tcg", "two")


def test_host_root_is_read_only_with_remapped_devices():
    argv = QemuArgs(Path("qemu")).host_root("hostroot").argv()
    fsdev = _opt(argv, "-fsdev")[0]
    assert "readonly=on" in fsdev and "multidevs=remap" in fsdev and "path=/," in fsdev


def test_kaslr_boots_the_bzimage_and_nokaslr_the_pvh_vmlinux(tmp_path):
    from ktstr.vm.kernel import Kernel

    config = tmp_path / "config"
    config.write_text("CONFIG_PVH=y\n")
    k = Kernel(key="k", version="k", image=tmp_path / "vmlinuz", config=config,
               modules_dir=None, vmlinux=tmp_path / "vmlinux")
    assert k.boot_image() == tmp_path / "vmlinuz"  # KASLR is the default
    assert k.boot_image(kaslr=False) == tmp_path / "vmlinux"
    config.write_text("# CONFIG_PVH is not set\n")
    k2 = Kernel(key="k", version="k", image=tmp_path / "vmlinuz", config=config,
                modules_dir=None, vmlinux=tmp_path / "vmlinux")
    assert k2.boot_image(kaslr=False) == tmp_path / "vmlinuz"
    k3 = Kernel(key="k", version="k", image=tmp_path / "vmlinuz", config=None,
                modules_dir=None, vmlinux=None)
    assert k3.boot_image(kaslr=False) == tmp_path / "vmlinuz"


def test_firmware_rom_is_passed_only_when_given():
    assert QemuArgs(Path("qemu")).firmware(None).argv() == ["qemu"]
    assert QemuArgs(Path("qemu")).firmware(Path("/q.rom")).argv() == ["qemu", "-bios", "/q.rom"]


def test_console_goes_to_a_file_or_to_the_terminal(tmp_path):
    argv = QemuArgs(Path("qemu")).console(tmp_path / "c,1.log").argv()
    assert _opt(argv, "-chardev") == [f"file,id=console,path={tmp_path}/c,,1.log,append=on"]
    assert _opt(argv, "-serial") == ["chardev:console"]
    argv = QemuArgs(Path("qemu")).console_stdio().argv()
    assert _opt(argv, "-chardev") == ["stdio,id=console,signal=off"]


def test_control_sockets_are_clients_of_ours(tmp_path):
    argv = QemuArgs(Path("qemu")).result_port(tmp_path / "r", "ktstr.result").qmp(
        tmp_path / "q").argv()
    chardevs = _opt(argv, "-chardev")
    assert chardevs == [f"socket,id=result,path={tmp_path}/r", f"socket,id=qmp,path={tmp_path}/q"]
    assert not any("server=on" in c for c in chardevs)
    assert "virtserialport,bus=vser0.0,chardev=result,name=ktstr.result" in _opt(argv, "-device")


def test_scratch_disk_is_a_raw_virtio_blk_drive_found_by_serial(tmp_path):
    argv = QemuArgs(Path("qemu")).scratch_disk(tmp_path / "s,1.img", "ktstr-scratch").argv()
    assert _opt(argv, "-drive") == [f"if=none,id=scratch,file={tmp_path}/s,,1.img,format=raw,"
                                    "cache=none,aio=native"]
    assert _opt(argv, "-device") == ["virtio-blk-pci,drive=scratch,serial=ktstr-scratch"]
    argv = QemuArgs(Path("qemu")).scratch_disk(Path("/i"), "s", direct=False).argv()
    assert _opt(argv, "-drive")[0].endswith(",cache=writeback,aio=threads")


def test_machine_attaches_the_disk_only_when_it_has_a_size(tmp_path, monkeypatch):
    monkeypatch.setenv("KTSTR_QEMU", "/bin/true")
    QemuBinary.find.cache_clear()
    try:
        spec = VmSpec(image=tmp_path / "k", initrd=tmp_path / "i",
                      topology=Topology.parse("1n1l1c1t"), memory_mb=256, accel="tcg")
        assert spec.disk_mb == SCRATCH_DISK_MB == 256
        argv = qemu_args(spec, tmp_path, "r", tmp_path / "c", tmp_path / "d.img")[0].argv()
        assert [d for d in _opt(argv, "-drive") if f"file={tmp_path}/d.img" in d]
        assert "virtio-blk-pci,drive=scratch,serial=ktstr-scratch" in _opt(argv, "-device")
        spec = replace(spec, disk_mb=0)
        argv = qemu_args(spec, tmp_path, "r", tmp_path / "c", tmp_path / "d.img")[0].argv()
        assert "-drive" not in argv and not any("virtio-blk" in a for a in argv)
    finally:
        QemuBinary.find.cache_clear()


def test_scratch_image_is_sparse_and_of_the_asked_size(tmp_path):
    image = tmp_path / "scratch.img"
    assert create_scratch_image(image, 64) is True  # /tmp here takes O_DIRECT
    st = image.stat()
    assert st.st_size == 64 << 20 and st.st_blocks * 512 < 1 << 20
    with pytest.raises(FileExistsError):  # never reuses (or clobbers) another run's image
        create_scratch_image(image, 64)


def test_the_qemu_version_is_asked_once_per_binary(tmp_path, monkeypatch):
    """`qemu --version` costs every run 20-40 ms: remembered under the binary's identity
    (path, size, mtime) in the cache, asked again when the binary changes."""
    fake = tmp_path / "qemu-system-x86_64"
    calls = tmp_path / "calls"
    fake.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'QEMU emulator version 9.9.1'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("KTSTR_QEMU", str(fake))
    monkeypatch.setenv("KTSTR_CACHE_DIR", str(tmp_path / "cache"))
    settings.cache_clear()
    QemuBinary.find.cache_clear()
    try:
        for _ in range(2):
            QemuBinary.find.cache_clear()
            assert QemuBinary.find().version == "9.9.1"
        assert calls.read_text().count("x") == 1
        fake.write_text(fake.read_text().replace("9.9.1", "9.9.2") + "\n")
        QemuBinary.find.cache_clear()
        assert QemuBinary.find().version == "9.9.2"
        assert calls.read_text().count("x") == 2
    finally:
        QemuBinary.find.cache_clear()
        settings.cache_clear()
