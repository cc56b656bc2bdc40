"""BTF value rendering (ktstr.monitor.btfvalue) against the real BTF of example schedulers.

tests/unit/data/scx_{qmap,flatcg}.btf.gz are the `.BTF` sections of the BPF objects
embedded in the schedulers built for the 7.2.13 kernel (`ktstr sched build`), extracted
from the binaries' libbpf skeletons (the ELF with e_machine 247, EM_BPF).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from ktstr.monitor.btf import DATASEC, ENUM, INT, STRUCT, Btf
from ktstr.monitor.btfvalue import datasec_vars, encode_scalar, render, render_datasec

DATA = Path(__file__).parent / "data"


def _btf(name: str) -> Btf:
    return Btf(gzip.decompress((DATA / f"{name}.btf.gz").read_bytes()))


@pytest.fixture(scope="module")
def qmap() -> Btf:
    return _btf("scx_qmap")


def _fill(btf: Btf, sec: int, values: dict[str, bytes]) -> bytes:
    size = btf.type(sec).size_or_type
    buf = bytearray(size)
    offsets = {n: off for n, _t, off, _s in datasec_vars(btf, sec)}
    for name, raw in values.items():
        buf[offsets[name]:offsets[name] + len(raw)] = raw
    return bytes(buf)


def test_qmap_bss_renders_its_counters(qmap):
    bss = qmap.find(".bss", DATASEC).id
    buf = _fill(qmap, bss, {
        "____qmap_enqueue.user_cnt": struct.pack("<I", 7),
        "____qmap_enqueue.kernel_cnt": struct.pack("<I", 0xFFFFFFFF),
        "dispatch_highpri.highpri_seq": struct.pack("<Q", 1 << 40),
        "cid_override_cpu_to_cid": struct.pack("<3i", 2, -1, 5),
    })
    got = render_datasec(qmap, bss, buf)
    assert got["____qmap_enqueue.user_cnt"] == 7
    assert got["____qmap_enqueue.kernel_cnt"] == 0xFFFFFFFF  # unsigned
    assert got["dispatch_highpri.highpri_seq"] == 1 << 40
    cids = got["cid_override_cpu_to_cid"]
    assert len(cids) == 1024 and cids[:4] == [2, -1, 5, 0]  # s32: signed


def test_qmap_arena_globals_render_as_nested_dicts(qmap):
    """This kernel's qmap keeps nr_enqueued/nr_dispatched in its arena (`qa`)."""
    sec = qmap.find(".addr_space.1", DATASEC).id
    qa_type = next(t for n, t, _o, _s in datasec_vars(qmap, sec) if n == "qa")
    ctx = qmap.offsetof("qmap_arena.cpu_ctxs")
    raw = bytearray(qmap.size(qa_type))
    struct.pack_into("<QQ", raw, 0, 1234, 1200)
    struct.pack_into("<QQII", raw, ctx + 24, 3, 9, 97, 512)  # cpu_ctxs[1]
    got = render_datasec(qmap, sec, bytes(raw))["qa"]
    assert (got["nr_enqueued"], got["nr_dispatched"], got["nr_dequeued"]) == (1234, 1200, 0)
    assert got["cpu_ctxs"][1] == {"dsp_idx": 3, "dsp_cnt": 9, "avg_weight": 97,
                                  "cpuperf_target": 512}
    assert isinstance(got["task_ctxs"], int)  # an arena pointer: its address


def test_qmap_rodata_bools_ints_and_char_arrays(qmap):
    ro = qmap.find(".rodata", DATASEC).id
    buf = _fill(qmap, ro, {"slice_ns": struct.pack("<Q", 20_000_000),
                           "highpri_boosting": b"\x01", "disallow_tgid": struct.pack("<i", -1),
                           "qidx_to_cpuperf_target": struct.pack("<5I", 0, 256, 512, 768, 1024),
                           "monitor_timerfn.____fmt": b"enq=%llu\0garbage"})
    got = render_datasec(qmap, ro, buf)
    assert got["slice_ns"] == 20_000_000
    assert got["highpri_boosting"] is True and got["print_msgs"] is False
    assert got["disallow_tgid"] == -1
    assert got["qidx_to_cpuperf_target"] == [0, 256, 512, 768, 1024]
    assert got["monitor_timerfn.____fmt"] == "enq=%llu"  # up to the NUL


def test_struct_with_a_char_array_and_enum(qmap):
    uei = qmap.find("user_exit_info", STRUCT).id
    raw = bytearray(qmap.size(uei))
    kind = qmap.offsetof("user_exit_info.kind")
    struct.pack_into("<i", raw, kind, 1024)
    reason = qmap.offsetof("user_exit_info.reason")
    raw[reason:reason + 6] = b"oops!\0"
    got = render(qmap, uei, bytes(raw))
    assert got["kind"] == 1024 and got["reason"] == "oops!" and got["msg"] == ""
    exit_kind = qmap.find("scx_exit_kind", ENUM).id
    assert render(qmap, exit_kind, struct.pack("<I", 1024)) == "SCX_EXIT_ERROR"
    assert render(qmap, exit_kind, struct.pack("<I", 77)) == 77  # no name for it


def test_bitfields(qmap):
    uclamp = qmap.find("uclamp_se", STRUCT).id
    word = 1000 | 5 << 11 | 1 << 14 | 0 << 15
    assert render(qmap, uclamp, struct.pack("<I", word)) == {
        "value": 1000, "bucket_id": 5, "active": 1, "user_defined": 0}
    desc = qmap.find("desc_struct", STRUCT).id
    raw = struct.pack("<HHBBBB", 0xFFFF, 0x1234, 0x56, 0x9A | 1 << 4 | 3 << 5 | 1 << 7,
                      0x0F | 1 << 7, 0x78)
    got = render(qmap, desc, raw)
    assert (got["limit0"], got["base0"], got["base1"]) == (0xFFFF, 0x1234, 0x56)
    assert (got["type"], got["s"], got["dpl"], got["p"]) == (0xA, 1, 3, 1)
    assert (got["limit1"], got["g"], got["base2"]) == (0xF, 1, 0x78)


def test_flatcg_per_cpu_context_struct():
    flatcg = _btf("scx_flatcg")
    ctx = flatcg.find("fcg_cpu_ctx", STRUCT).id
    assert render(flatcg, ctx, struct.pack("<QQ", 42, 10**12)) == {"cur_cgid": 42,
                                                                   "cur_at": 10**12}


# -- a hand-built BTF for what the schedulers' BTF lacks: floats, signed bitfields ------

def _tiny_btf() -> Btf:
    strs = b"\0int\0float\0double\0s\0a\0b\0f\0e\0NEG\0POS\0"
    off = {s.decode(): strs.index(b"\0" + s + b"\0") + 1
           for s in (b"int", b"float", b"double", b"s", b"a", b"b", b"f", b"e", b"NEG", b"POS")}
    types = b""
    # 1: int (signed, 32 bits)
    types += struct.pack("<III", off["int"], INT << 24, 4) + struct.pack("<I", 1 << 24 | 32)
    # 2: float, 3: double
    types += struct.pack("<III", off["float"], 16 << 24, 4)
    types += struct.pack("<III", off["double"], 16 << 24, 8)
    # 4: signed enum e { NEG = -1, POS = 1 }
    types += struct.pack("<III", off["e"], 1 << 31 | ENUM << 24 | 2, 4)
    types += struct.pack("<Ii", off["NEG"], -1) + struct.pack("<Ii", off["POS"], 1)
    # 5: struct s { int a:3; int b:5; double f; enum e e; } (kind_flag: bitfield sizes)
    types += struct.pack("<III", off["s"], 1 << 31 | STRUCT << 24 | 4, 24)
    types += struct.pack("<III", off["a"], 1, 3 << 24 | 0)
    types += struct.pack("<III", off["b"], 1, 5 << 24 | 3)
    types += struct.pack("<III", off["f"], 3, 64)
    types += struct.pack("<III", off["e"], 4, 128)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs))
    return Btf(hdr + types + strs)


def test_signed_bitfields_floats_and_signed_enums():
    btf = _tiny_btf()
    bits = (-2 & 0b111) | (-9 & 0b11111) << 3
    raw = struct.pack("<i4xdi4x", bits, 2.5, -1)
    assert render(btf, 5, raw) == {"a": -2, "b": -9, "f": 2.5, "e": "NEG"}
    assert render(btf, 2, struct.pack("<f", 0.5)) == 0.5
    assert encode_scalar(btf, 3, 1.25, "x") == struct.pack("<d", 1.25)
    assert encode_scalar(btf, 4, -1, "x") == struct.pack("<i", -1)


def test_encode_scalar_checks_the_type(qmap):
    u32 = next(t for n, t, _o, _s in datasec_vars(qmap, qmap.find(".bss", DATASEC).id)
               if n == "____qmap_enqueue.user_cnt")
    assert encode_scalar(qmap, u32, 5, "user_cnt") == b"\5\0\0\0"
    with pytest.raises(ValueError, match=r"user_cnt is unsigned int \(0\.\.4294967295\); "
                                         "-1 does not fit"):
        encode_scalar(qmap, u32, -1, "user_cnt")
    with pytest.raises(ValueError, match="is a float"):
        encode_scalar(qmap, u32, 1.5, "user_cnt")
    boolean = qmap.find("_Bool", INT).id
    assert encode_scalar(qmap, boolean, True, "b") == b"\1"
    with pytest.raises(ValueError, match="is a bool"):
        encode_scalar(qmap, boolean, 2, "b")
    uei = qmap.find("user_exit_info", STRUCT).id
    with pytest.raises(ValueError, match=r"uei is a struct; name one of its scalar members"):
        encode_scalar(qmap, uei, 1, "uei")
