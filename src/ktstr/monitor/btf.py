"""The kernel's BTF: a pure-Python parser and the type finder the monitor needs.

drgn reads types from DWARF, which Debian's small kernel packages do not ship; every
sched_ext kernel has BTF (`CONFIG_DEBUG_INFO_BTF`), in the vmlinux `.BTF` section and
at /sys/kernel/btf/vmlinux. The monitor only needs sizes, member offsets by a dotted
path (`rq.scx.local_dsq.nr`, anonymous unions crossed transparently), enum values and
the names of a struct's members, so this is that and no more. Split BTF (modules,
BPF programs on top of the vmlinux BTF) is not supported. Format:
Documentation/bpf/btf.rst.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

BTF_MAGIC = 0xEB9F

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
_QUALIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)
# Bytes after the common 12-byte header: fixed, and per vlen item.
_EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
          FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0),
          ENUM64: (0, 12)}


class BtfError(ValueError):
    """The blob is not BTF, or a type or member asked for is not in it."""


@dataclass(frozen=True, slots=True)
class BtfType:
    id: int
    kind: int
    name: str
    vlen: int
    kind_flag: bool
    size_or_type: int  # size for INT/STRUCT/UNION/ENUM/DATASEC/FLOAT, else a type id
    extra: int  # offset of the kind-specific data in the type section


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int  # 0 for an ordinary member


@dataclass(frozen=True, slots=True)
class Field:
    """Where a dotted path lands: byte offset from the outer struct, its type and size."""

    offset: int
    type_id: int
    size: int


class Btf:
    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BtfError(f"{len(data)} bytes is too short for a BTF header")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x} (expected {BTF_MAGIC:#x})")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self._types = data[hdr_len + type_off:hdr_len + type_off + type_len]
        self._strs = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self._index: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]  # id 0: void
        self._scan()

    def _scan(self) -> None:
        """Record where each type starts: (name_off, info, size_or_type, extra offset)."""
        buf, pos, end = self._types, 0, len(self._types)
        index, unpack = self._index, struct.Struct("<III").unpack_from
        while pos < end:
            name_off, info, st = unpack(buf, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            fixed, per = _EXTRA.get(kind, (0, 0))
            index.append((name_off, info, st, pos + 12))
            pos += 12 + fixed + per * vlen
        if pos != end:
            raise BtfError(f"type section ends mid-type at {pos} of {end}")

    def __len__(self) -> int:
        return len(self._index)

    def _str(self, off: int) -> str:
        end = self._strs.index(b"\0", off)
        return self._strs[off:end].decode("utf-8", "replace")

    def type(self, tid: int) -> BtfType:
        if not 0 < tid < len(self._index):
            raise BtfError(f"type id {tid} is not in this BTF (1..{len(self._index) - 1})")
        name_off, info, st, extra = self._index[tid]
        return BtfType(tid, (info >> 24) & 0x1F, self._str(name_off), info & 0xFFFF,
                       bool(info >> 31), st, extra)

    @cached_property
    def _by_name(self) -> dict[str, list[int]]:
        names: dict[str, list[int]] = {}
        for tid, (name_off, *_rest) in enumerate(self._index):
            if name_off:
                names.setdefault(self._str(name_off), []).append(tid)
        return names

    def find(self, name: str, *kinds: int) -> BtfType:
        """The first type called `name` of one of `kinds` (any kind when none given)."""
        for tid in self._by_name.get(name, ()):
            t = self.type(tid)
            if not kinds or t.kind in kinds:
                return t
        raise BtfError(f"no type {name!r} in this kernel's BTF")

    def struct(self, name: str) -> BtfType:
        return self.find(name, STRUCT, UNION)

    def resolve(self, tid: int) -> BtfType:
        """`tid` with typedefs and qualifiers stripped."""
        t = self.type(tid)
        while t.kind in _QUALIFIERS:
            t = self.type(t.size_or_type)
        return t

    def size(self, tid: int) -> int:
        t = self.resolve(tid)
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return t.size_or_type
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            elem, _index, n = struct.unpack_from("<III", self._types, t.extra)
            return int(n) * self.size(elem)
        raise BtfError(f"type {t.name or t.id} (kind {t.kind}) has no size")

    def array(self, tid: int) -> tuple[int, int]:
        """(element type id, number of elements) of an array type."""
        t = self.resolve(tid)
        if t.kind != ARRAY:
            raise BtfError(f"type {t.name or t.id} is not an array")
        elem, _index, n = struct.unpack_from("<III", self._types, t.extra)
        return elem, n

    def members(self, tid: int) -> list[Member]:
        t = self.resolve(tid)
        if t.kind not in (STRUCT, UNION):
            raise BtfError(f"type {t.name or t.id} is not a struct or union")
        out = []
        for i in range(t.vlen):
            name_off, mtype, off = struct.unpack_from("<III", self._types, t.extra + 12 * i)
            bits = off >> 24 if t.kind_flag else 0
            out.append(Member(self._str(name_off), mtype,
                              off & 0xFFFFFF if t.kind_flag else off, bits))
        return out

    def _member(self, tid: int, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of `name` in `tid`, looking inside anonymous members."""
        for m in self.members(tid):
            if m.name == name:
                return m.bit_offset, m.type_id
            if not m.name and self.resolve(m.type_id).kind in (STRUCT, UNION):
                inner = self._member(m.type_id, name)
                if inner is not None:
                    return m.bit_offset + inner[0], inner[1]
        return None

    def field(self, path: str) -> Field:
        """`"rq.scx.local_dsq.nr"`: the struct named first, then members by name."""
        root, *names = path.split(".")
        tid = self.struct(root).id
        bits = 0
        for depth, name in enumerate(names):
            found = self._member(tid, name)
            if found is None:
                where = ".".join([root, *names[:depth]])
                have = ", ".join(m.name or "(anonymous)" for m in self.members(tid))
                raise BtfError(f"{where} has no member {name!r} in this kernel's BTF "
                               f"(it has: {have})")
            bits += found[0]
            tid = found[1]
        if bits % 8:
            raise BtfError(f"{path} is a bitfield (bit offset {bits}); not supported")
        return Field(bits // 8, tid, self.size(tid))

    def offsetof(self, path: str) -> int:
        return self.field(path).offset

    def enum(self, name: str) -> dict[str, int]:
        t = self.find(name, ENUM, ENUM64)
        out = {}
        for i in range(t.vlen):
            if t.kind == ENUM:
                name_off, val = struct.unpack_from("<Ii", self._types, t.extra + 8 * i)
            else:
                name_off, lo, hi = struct.unpack_from("<III", self._types, t.extra + 12 * i)
                val = lo | hi << 32
            out[self._str(name_off)] = val
        return out
