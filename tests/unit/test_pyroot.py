import os

from ktstr.vm.pyroot import mirror


def test_a_symlinked_directory_is_mirrored_as_the_same_link(tmp_path):
    real = tmp_path / "usr" / "lib"
    real.mkdir(parents=True)
    (real / "libx.so").write_bytes(b"\x7fELF")
    (tmp_path / "lib").symlink_to("usr/lib")
    entries = {e.path: e for e in mirror([str(tmp_path / "lib" / "libx.so")])}
    link = entries[str(tmp_path / "lib")]
    assert (link.kind, link.target) == ("link", "usr/lib")
    assert entries[str(real / "libx.so")].kind == "file"
    # Nothing is placed *under* the link: it would turn it into a directory.
    assert not any(p.startswith(str(tmp_path / "lib") + "/") for p in entries)


def test_directories_carry_their_host_mode(tmp_path):
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    (d / "f").write_text("x")
    entries = {e.path: e for e in mirror([str(d / "f")])}
    assert entries[str(d)].mode == 0o700
    assert entries[str(d / "f")].size == 1


def test_an_absolute_link_to_a_file_brings_its_target(tmp_path):
    (tmp_path / "python3.11").write_bytes(b"\x7fELF")
    (tmp_path / "python").symlink_to(tmp_path / "python3.11")
    kinds = {e.path: e.kind for e in mirror([str(tmp_path / "python")])}
    assert kinds[str(tmp_path / "python")] == "link"
    assert kinds[str(tmp_path / "python3.11")] == "file"


def test_saved_tree_is_reused_until_a_listed_file_changes(tmp_path, monkeypatch):
    import ktstr.vm.pyroot as pyroot

    module = tmp_path / "mod.py"
    module.write_text("x = 1\n")
    calls = []

    def fake_files(python):
        calls.append(python)
        return [str(module)]

    monkeypatch.setattr(pyroot, "agent_files", fake_files)
    monkeypatch.setattr(pyroot, "shared_libraries", lambda binaries: set())
    first = pyroot.agent_tree.__wrapped__("/usr/bin/python3", tmp_path / "c")
    again = pyroot.agent_tree.__wrapped__("/usr/bin/python3", tmp_path / "c")
    assert first == again and len(calls) == 1
    module.write_text("x = 22\n")  # size changes: the saved list is stale
    pyroot.agent_tree.__wrapped__("/usr/bin/python3", tmp_path / "c")
    assert len(calls) == 2
