"""The BPF programs a process holds, as the kernel describes them after verification.

Two sources, read independently so each can check the other:

- `/proc/PID/fdinfo/FD` of every BPF program fd the process holds: `prog_type`,
  `prog_id`, `verified_insns` (in fdinfo since 5.16, commit aba64c7da983 "bpf: Add
  verified_insns to bpf_prog_info and fdinfo"). This says which programs are the
  process's own: a scheduler keeps its skeleton, so every program it loaded stays open.
- the `bpf(2)` syscall: `BPF_PROG_GET_FD_BY_ID`, then `BPF_OBJ_GET_INFO_BY_FD` for the
  `struct bpf_prog_info` of include/uapi/linux/bpf.h, which adds the program's name.
  The struct only grows at its end (UAPI), so the offsets below hold on every kernel
  that has `verified_insns`; older kernels fill less and we read 0 there.

Needs CAP_SYS_ADMIN for the syscall part (the guest runs as root). x86_64 and aarch64.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from ktstr.system import fs, proc
from ktstr.system.libc import MACHINE, syscall, syscall_nr

PROC = Path("/proc")

BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_BTF_GET_FD_BY_ID = 19

# struct bpf_prog_info (include/uapi/linux/bpf.h): the fields we read, by offset.
PROG_INFO_SIZE = 232
_OFF_TYPE, _OFF_TAG = 0, 8  # type, then id
_OFF_XLATED_LEN = 20
_OFF_NAME, NAME_LEN = 64, 16  # BPF_OBJ_NAME_LEN
_OFF_BTF_ID, _OFF_FUNC_INFO_REC_SIZE, _OFF_FUNC_INFO, _OFF_NR_FUNC_INFO = 128, 132, 136, 144
_OFF_VERIFIED_INSNS = 216
FUNC_INFO_REC_SIZE = 8  # struct bpf_func_info {insn_off, type_id}
BTF_INFO_SIZE = 32  # struct bpf_btf_info {btf, btf_size, id, name, name_len, kernel_btf}

# BTF (include/uapi/linux/btf.h): bytes that follow each type's 12-byte header, by kind.
BTF_KIND_FUNC = 12
_BTF_EXTRA_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}  # INT, ARRAY, VAR, DECL_TAG
_BTF_EXTRA_PER_MEMBER = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}  # STRUCT ... ENUM64
_BTF_KIND_MAX = 19

#: enum bpf_prog_type, the names bpftool prints.
PROG_TYPES = (
    "unspec", "socket_filter", "kprobe", "sched_cls", "sched_act", "tracepoint", "xdp",
    "perf_event", "cgroup_skb", "cgroup_sock", "lwt_in", "lwt_out", "lwt_xmit", "sock_ops",
    "sk_skb", "cgroup_device", "sk_msg", "raw_tracepoint", "cgroup_sock_addr",
    "lwt_seg6local", "lirc_mode2", "sk_reuseport", "flow_dissector", "cgroup_sysctl",
    "raw_tracepoint_writable", "cgroup_sockopt", "tracing", "struct_ops", "ext", "lsm",
    "sk_lookup", "syscall", "netfilter",
)


def prog_type_name(value: int) -> str:
    return PROG_TYPES[value] if 0 <= value < len(PROG_TYPES) else f"type{value}"


@dataclass(frozen=True, slots=True)
class FdProg:
    """One BPF program fd of a process, from its fdinfo."""

    fd: int
    prog_id: int
    prog_type: int
    verified_insns: int | None  # None: a kernel older than 5.16


@dataclass(frozen=True, slots=True)
class ProgInfo:
    """`struct bpf_prog_info` of one program: what the verifier accepted, and its size."""

    id: int
    type: str
    name: str
    tag: str
    verified_insns: int  # instructions the verifier processed (its complexity figure)
    xlated_len: int  # bytes of the program after the verifier's rewrites

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "type": self.type, "name": self.name, "tag": self.tag,
                "verified_insns": self.verified_insns, "xlated_len": self.xlated_len}


def parse_fdinfo(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def process_progs(pid: int, root: Path = PROC) -> list[FdProg]:
    """The BPF program fds of `pid`, one per program (a program open twice counts once),
    by program id; [] when the process has none or is gone."""
    fdinfo = root / str(pid) / "fdinfo"
    try:
        fds = sorted(int(name) for name in os.listdir(fdinfo) if name.isdigit())
    except OSError:
        return []
    seen: dict[int, FdProg] = {}
    for fd in fds:
        text = fs.read_optional(fdinfo / str(fd))
        if text is None:
            continue
        info = parse_fdinfo(text)
        if "prog_id" not in info or not info.get("prog_type", "").isdigit():
            continue  # not a program: a map, a link, a plain file
        prog_id = int(info["prog_id"])
        insns = info.get("verified_insns")
        seen.setdefault(prog_id, FdProg(fd, prog_id, int(info["prog_type"]),
                                        int(insns) if insns and insns.isdigit() else None))
    return sorted(seen.values(), key=lambda p: p.prog_id)


def session_progs(sid: int, root: Path = PROC) -> list[FdProg]:
    """The BPF programs held by any process of session `sid` (a scheduler started in a
    session of its own, through a wrapper that forks, still has its programs found),
    once each by program id."""
    seen: dict[int, FdProg] = {}
    for name in sorted(os.listdir(root), key=lambda n: (len(n), n)):
        if not name.isdigit():
            continue
        text = fs.read_optional(root / name / "stat")
        try:
            in_session = text is not None and int(proc.parse_stat(text)[5]) == sid
        except (ValueError, IndexError):
            in_session = False
        if in_session:
            for p in process_progs(int(name), root):
                seen.setdefault(p.prog_id, p)
    return sorted(seen.values(), key=lambda p: p.prog_id)


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    nr = syscall_nr("bpf")
    if nr is None:
        raise OSError(f"bpf(2): no syscall number known for {MACHINE}")
    ret = int(syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr))))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(cmd={cmd}): {os.strerror(err)}")
    return ret


def _get_fd_by_id(cmd: int, obj_id: int) -> int:
    return _bpf(cmd, ctypes.create_string_buffer(struct.pack("=III", obj_id, 0, 0), 128))


def _info_by_fd(fd: int, info: ctypes.Array[ctypes.c_char]) -> None:
    req = struct.pack("=IIQ", fd, len(info), ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, ctypes.create_string_buffer(req, 128))


def prog_info(prog_id: int) -> ProgInfo:
    """The kernel's `bpf_prog_info` of program `prog_id`; OSError (ENOENT once unloaded,
    EPERM without CAP_SYS_ADMIN). The kernel keeps 15 characters of a name; the full
    one comes from the program's BTF when it has some (as bpftool does)."""
    fd = _get_fd_by_id(BPF_PROG_GET_FD_BY_ID, prog_id)
    try:
        func = ctypes.create_string_buffer(FUNC_INFO_REC_SIZE)
        info = ctypes.create_string_buffer(PROG_INFO_SIZE)
        struct.pack_into("=IQI", info, _OFF_FUNC_INFO_REC_SIZE, FUNC_INFO_REC_SIZE,
                         ctypes.addressof(func), 1)
        _info_by_fd(fd, info)
        raw = info.raw
    finally:
        os.close(fd)
    decoded = decode_prog_info(raw)
    (btf_id,) = struct.unpack_from("=I", raw, _OFF_BTF_ID)
    (nr_func_info,) = struct.unpack_from("=I", raw, _OFF_NR_FUNC_INFO)
    if btf_id and nr_func_info and len(decoded.name) == NAME_LEN - 1:
        (_insn_off, type_id) = struct.unpack("=II", func.raw)
        full = _btf_func_name(btf_id, type_id)
        if full is not None and full.startswith(decoded.name):
            decoded = replace(decoded, name=full)
    return decoded


def _btf_func_name(btf_id: int, type_id: int) -> str | None:
    """The name of FUNC `type_id` in BTF object `btf_id`; None if it cannot be read."""
    try:
        fd = _get_fd_by_id(BPF_BTF_GET_FD_BY_ID, btf_id)
    except OSError:
        return None
    try:
        info = ctypes.create_string_buffer(BTF_INFO_SIZE)
        _info_by_fd(fd, info)  # with btf_size 0: learn the size
        (size,) = struct.unpack_from("=I", info.raw, 8)
        data = ctypes.create_string_buffer(size)
        info = ctypes.create_string_buffer(BTF_INFO_SIZE)
        struct.pack_into("=QI", info, 0, ctypes.addressof(data), size)
        _info_by_fd(fd, info)
    except OSError:
        return None
    finally:
        os.close(fd)
    return btf_type_name(data.raw, type_id, want_kind=BTF_KIND_FUNC)


def btf_type_name(btf: bytes, type_id: int, want_kind: int | None = None) -> str | None:
    """The name of type `type_id` (1-based) in a standalone BTF blob; None when the blob
    is not BTF, holds a kind this reader does not know, or the type is another kind."""
    if len(btf) < 24 or struct.unpack_from("<H", btf, 0)[0] != 0xEB9F:
        return None
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<IIIII", btf, 4)
    types, strings = hdr_len + type_off, hdr_len + str_off
    at, end, tid = types, types + type_len, 1
    while at + 12 <= end:
        name_off, info, _size = struct.unpack_from("<III", btf, at)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind > _BTF_KIND_MAX:
            return None
        if tid == type_id:
            if (want_kind is not None and kind != want_kind) or name_off >= str_len:
                return None
            start = strings + name_off
            return btf[start:btf.index(b"\0", start)].decode(errors="replace")
        at += 12 + _BTF_EXTRA_FIXED.get(kind, 0) + _BTF_EXTRA_PER_MEMBER.get(kind, 0) * vlen
        tid += 1
    return None


def decode_prog_info(raw: bytes) -> ProgInfo:
    """A `struct bpf_prog_info` buffer (at least up to `verified_insns`) as a ProgInfo."""
    (ptype, pid) = struct.unpack_from("=II", raw, _OFF_TYPE)
    tag = raw[_OFF_TAG:_OFF_TAG + 8].hex()
    (xlated,) = struct.unpack_from("=I", raw, _OFF_XLATED_LEN)
    name = raw[_OFF_NAME:_OFF_NAME + NAME_LEN].split(b"\0", 1)[0].decode(errors="replace")
    (verified,) = struct.unpack_from("=I", raw, _OFF_VERIFIED_INSNS)
    return ProgInfo(id=pid, type=prog_type_name(ptype), name=name, tag=tag,
                    verified_insns=verified, xlated_len=xlated)
