"""ktstr.system.bpf on a fake /proc and on hand-made bpf_prog_info buffers."""

import struct

from ktstr.system import bpf

PROG_FDINFO = ("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t27\n"
               "prog_jited:\t1\nprog_tag:\t1eeb1b9ba62b7751\nmemlock:\t4096\nprog_id:\t{id}\n"
               "run_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t0\nverified_insns:\t{n}\n")
MAP_FDINFO = "pos:\t0\nflags:\t02000002\nmap_type:\t2\nkey_size:\t4\nmap_id:\t3\n"


def fake_proc(tmp_path, pid, fds):
    d = tmp_path / str(pid) / "fdinfo"
    d.mkdir(parents=True)
    for fd, text in fds.items():
        (d / str(fd)).write_text(text)
    return tmp_path


def test_process_progs_keeps_program_fds_once_each_by_id(tmp_path):
    root = fake_proc(tmp_path, 42, {
        0: "pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t5\n",  # a tty
        3: MAP_FDINFO,
        7: PROG_FDINFO.format(id=9, n=42),
        5: PROG_FDINFO.format(id=7, n=34),
        8: PROG_FDINFO.format(id=9, n=42),  # the same program open twice
    })
    progs = bpf.process_progs(42, root)
    assert [(p.prog_id, p.fd, p.verified_insns) for p in progs] == [(7, 5, 34), (9, 7, 42)]
    assert bpf.prog_type_name(progs[0].prog_type) == "struct_ops"


def test_a_kernel_without_verified_insns_in_fdinfo_reads_none(tmp_path):
    old = PROG_FDINFO.format(id=3, n=0).replace("verified_insns:\t0\n", "")
    root = fake_proc(tmp_path, 1, {4: old})
    assert bpf.process_progs(1, root)[0].verified_insns is None


def test_a_gone_process_has_no_programs(tmp_path):
    assert bpf.process_progs(99999, tmp_path) == []


def test_decode_prog_info_reads_the_uapi_offsets():
    raw = bytearray(bpf.PROG_INFO_SIZE)
    struct.pack_into("=II", raw, 0, 27, 12)
    raw[8:16] = bytes.fromhex("1eeb1b9ba62b7751")
    struct.pack_into("=I", raw, 20, 416)
    raw[64:64 + 15] = b"simple_enqueue\0"
    struct.pack_into("=I", raw, 216, 42)
    info = bpf.decode_prog_info(bytes(raw))
    assert info == bpf.ProgInfo(id=12, type="struct_ops", name="simple_enqueue",
                                tag="1eeb1b9ba62b7751", verified_insns=42, xlated_len=416)


def test_unknown_program_types_are_named_by_number():
    assert bpf.prog_type_name(31) == "syscall"
    assert bpf.prog_type_name(200) == "type200"


def btf_blob(types: list[bytes], strings: bytes) -> bytes:
    body = b"".join(types)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body), len(strings))
    return hdr + body + strings


def btf_type(name_off: int, kind: int, vlen: int, size_or_type: int, extra: bytes = b"") -> bytes:
    return struct.pack("<III", name_off, (kind << 24) | vlen, size_or_type) + extra


def test_btf_type_name_walks_every_kind_to_the_function():
    strings = b"\0int\0task_ctx\0simple_select_cpu\0"
    types = [
        btf_type(1, 1, 0, 4, struct.pack("<I", 32)),  # 1: INT, 4 extra bytes
        btf_type(5, 4, 2, 16, bytes(24)),  # 2: STRUCT with 2 members of 12 bytes
        btf_type(0, 13, 3, 1, bytes(24)),  # 3: FUNC_PROTO with 3 params of 8 bytes
        btf_type(14, 12, 1, 3),  # 4: FUNC simple_select_cpu
    ]
    blob = btf_blob(types, strings)
    assert bpf.btf_type_name(blob, 4, want_kind=bpf.BTF_KIND_FUNC) == "simple_select_cpu"
    assert bpf.btf_type_name(blob, 2) == "task_ctx"
    assert bpf.btf_type_name(blob, 2, want_kind=bpf.BTF_KIND_FUNC) is None
    assert bpf.btf_type_name(blob, 9) is None


def test_btf_type_name_gives_up_on_what_is_not_btf_or_an_unknown_kind():
    assert bpf.btf_type_name(b"\0" * 40, 1) is None
    assert bpf.btf_type_name(btf_blob([btf_type(0, 25, 0, 0)], b"\0"), 1) is None


def test_session_progs_gathers_the_programs_of_every_process_in_the_session(tmp_path):
    def proc(pid, session, fds):
        fake_proc(tmp_path, pid, fds)
        (tmp_path / str(pid) / "stat").write_text(
            f"{pid} (sh (wrap)) S 1 {session} {session} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0\n")

    proc(100, 100, {})  # the wrapper: a shell holding nothing
    proc(101, 100, {4: PROG_FDINFO.format(id=7, n=34), 5: PROG_FDINFO.format(id=9, n=42)})
    proc(102, 100, {6: PROG_FDINFO.format(id=9, n=42)})  # a thread-like sharer of prog 9
    proc(200, 200, {4: PROG_FDINFO.format(id=3, n=5)})  # someone else's program
    (tmp_path / "self").mkdir()
    progs = bpf.session_progs(100, tmp_path)
    assert [p.prog_id for p in progs] == [7, 9]
