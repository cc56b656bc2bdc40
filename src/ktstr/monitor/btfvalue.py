"""Bytes of a BPF program's memory turned into plain Python values through its own BTF.

A snapshot travels as JSON into the guest, the sidecar and `ktstr report`, so a map
value or a global is rendered to int, bool, float, str, list, dict (and None for what
has no value, e.g. a `void` or a function). Pure: unit-tested against the BTF of the
example schedulers. Format of the type records: Documentation/bpf/btf.rst.
"""

from __future__ import annotations

import struct
import weakref
from typing import Any

from ktstr.monitor.btf import (
    ARRAY,
    DATASEC,
    ENUM,
    ENUM64,
    FLOAT,
    INT,
    PTR,
    STRUCT,
    UNION,
    Btf,
    BtfError,
    BtfType,
    Member,
)

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
CHAR_NAMES = ("char", "signed char", "unsigned char")


def int_encoding(btf: Btf, tid: int) -> tuple[bool, bool, bool, int]:
    """(signed, bool, char, nr_bits) of an INT type."""
    t = btf.resolve(tid)
    (word,) = struct.unpack_from("<I", btf._types, t.extra)
    enc = (word >> 24) & 0x0F
    return bool(enc & INT_SIGNED), bool(enc & INT_BOOL), \
        bool(enc & INT_CHAR) or t.name in CHAR_NAMES, word & 0xFF


def _bits(data: bytes, bit_offset: int, nbits: int, signed: bool) -> int:
    first, last = bit_offset // 8, (bit_offset + nbits + 7) // 8
    raw = int.from_bytes(data[first:last], "little") >> (bit_offset % 8)
    value = raw & ((1 << nbits) - 1)
    if signed and value >> (nbits - 1):
        value -= 1 << nbits
    return value


def enum_values(btf: Btf, tid: int) -> dict[int, str]:
    t = btf.resolve(tid)
    out: dict[int, str] = {}
    for i in range(t.vlen):
        if t.kind == ENUM:
            name_off, val = struct.unpack_from("<Ii" if t.kind_flag else "<II", btf._types,
                                               t.extra + 8 * i)
        else:
            name_off, lo, hi = struct.unpack_from("<III", btf._types, t.extra + 12 * i)
            val = lo | hi << 32
            if t.kind_flag and val >> 63:
                val -= 1 << 64
        out.setdefault(val, btf._str(name_off))
    return out


class _Memo:
    """Per-BTF lookups a render repeats for every array element (a capture renders
    thousands: scx_qmap's arena alone holds 1024 per-CPU structs)."""

    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.resolved: dict[int, BtfType] = {}
        self.members: dict[int, list[Member]] = {}
        self.ints: dict[int, tuple[bool, bool, bool, int]] = {}
        self.enums: dict[int, dict[int, str]] = {}
        self.arrays: dict[int, tuple[int, int, int]] = {}  # elem, n, elem size

    def resolve(self, tid: int) -> BtfType:
        t = self.resolved.get(tid)
        if t is None:
            t = self.resolved[tid] = self.btf.resolve(tid)
        return t

    def member_list(self, tid: int) -> list[Member]:
        ms = self.members.get(tid)
        if ms is None:
            ms = self.members[tid] = self.btf.members(tid)
        return ms

    def int_enc(self, tid: int) -> tuple[bool, bool, bool, int]:
        e = self.ints.get(tid)
        if e is None:
            e = self.ints[tid] = int_encoding(self.btf, tid)
        return e

    def enum(self, tid: int) -> dict[int, str]:
        e = self.enums.get(tid)
        if e is None:
            e = self.enums[tid] = enum_values(self.btf, tid)
        return e

    def array(self, tid: int) -> tuple[int, int, int]:
        a = self.arrays.get(tid)
        if a is None:
            elem, n = self.btf.array(tid)
            a = self.arrays[tid] = (elem, n, self.btf.size(elem) if n else 0)
        return a


_MEMOS: weakref.WeakKeyDictionary[Btf, _Memo] = weakref.WeakKeyDictionary()
_UNPACK = {(1, False): "B", (2, False): "H", (4, False): "I", (8, False): "Q",
           (1, True): "b", (2, True): "h", (4, True): "i", (8, True): "q"}


def _memo(btf: Btf) -> _Memo:
    m = _MEMOS.get(btf)
    if m is None:
        m = _MEMOS[btf] = _Memo(btf)
    return m


def render(btf: Btf, tid: int, data: bytes, offset: int = 0) -> Any:
    """The value of type `tid` stored at `data[offset:]`."""
    return _render(_memo(btf), tid, data, offset)


def _render(memo: _Memo, tid: int, data: bytes, offset: int) -> Any:
    if tid == 0:
        return None
    t = memo.resolve(tid)
    kind = t.kind
    if kind == INT:
        signed, is_bool, _char, nbits = memo.int_enc(t.id)
        value = _bits(data, offset * 8, nbits or t.size_or_type * 8, signed)
        return bool(value) if is_bool else value
    if kind == PTR:
        return int.from_bytes(data[offset:offset + 8], "little")
    if kind in (ENUM, ENUM64):
        size = t.size_or_type
        value = int.from_bytes(data[offset:offset + size], "little", signed=t.kind_flag)
        return memo.enum(t.id).get(value, value)
    if kind == FLOAT:
        fmt = {4: "<f", 8: "<d"}.get(t.size_or_type)
        if fmt is None:  # long double: no Python equivalent, keep the bytes' integer
            return int.from_bytes(data[offset:offset + t.size_or_type], "little")
        return struct.unpack_from(fmt, data, offset)[0]
    if kind == ARRAY:
        elem, n, size = memo.array(t.id)
        er = memo.resolve(elem)
        if er.kind == INT:
            signed, is_bool, is_char, nbits = memo.int_enc(er.id)
            if is_char and er.size_or_type == 1:
                raw = data[offset:offset + n]
                return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
            code = _UNPACK.get((er.size_or_type, signed))
            if code and not is_bool and nbits == 8 * er.size_or_type:  # whole ints: at once
                return list(struct.unpack_from(f"<{n}{code}", data, offset))
        return [_render(memo, elem, data, offset + i * size) for i in range(n)]
    if kind in (STRUCT, UNION):
        return _render_struct(memo, t.id, data, offset)
    if kind == DATASEC:
        return render_datasec(memo.btf, t.id, data, offset)
    return None  # void, functions, forward declarations: nothing to show


def _render_struct(memo: _Memo, tid: int, data: bytes, offset: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in memo.member_list(tid):
        if m.bitfield_size:
            mt = memo.resolve(m.type_id)
            signed, is_bool = memo.int_enc(mt.id)[:2] if mt.kind == INT else (False, False)
            if mt.kind in (ENUM, ENUM64):
                signed = mt.kind_flag
            value: Any = _bits(data, offset * 8 + m.bit_offset, m.bitfield_size, signed)
            if is_bool:
                value = bool(value)
            elif mt.kind in (ENUM, ENUM64):
                value = memo.enum(mt.id).get(value, value)
        else:
            value = _render(memo, m.type_id, data, offset + m.bit_offset // 8)
        if not m.name and isinstance(value, dict):
            out.update(value)  # anonymous struct/union: its members read as the parent's
        elif m.name:
            out[m.name] = value
    return out


def datasec_vars(btf: Btf, tid: int) -> list[tuple[str, int, int, int]]:
    """(name, type id, offset, size) of each variable of a DATASEC."""
    t = btf.resolve(tid)
    if t.kind != DATASEC:
        raise BtfError(f"type {t.name or t.id} is not a DATASEC")
    out = []
    for i in range(t.vlen):
        var_id, off, size = struct.unpack_from("<III", btf._types, t.extra + 12 * i)
        var = btf.type(var_id)
        out.append((var.name, var.size_or_type, off, size))
    return out


def render_datasec(btf: Btf, tid: int, data: bytes, offset: int = 0) -> dict[str, Any]:
    """A section of globals (`.bss`, `.data`, ...): {variable name: value}."""
    memo = _memo(btf)
    return {name: _render(memo, vtype, data, offset + off)
            for name, vtype, off, _size in datasec_vars(btf, tid)}


def encode_scalar(btf: Btf, tid: int, value: int | float | bool, what: str) -> bytes:
    """`value` as the bytes of scalar type `tid`; ValueError naming `what` when it does not
    fit (a struct, an out-of-range integer, a float into an integer)."""
    t = btf.resolve(tid)
    if t.kind == INT:
        signed, is_bool, _char, nbits = int_encoding(btf, t.id)
        size = t.size_or_type
        if isinstance(value, float):
            raise ValueError(f"{what} is an integer ({t.name}); {value!r} is a float")
        v = int(value)
        if is_bool and v not in (0, 1):
            raise ValueError(f"{what} is a bool; {value!r} is not True/False/0/1")
        lo, hi = (-(1 << (nbits - 1)), (1 << (nbits - 1)) - 1) if signed else (0, (1 << nbits) - 1)
        if not lo <= v <= hi:
            raise ValueError(f"{what} is {t.name} ({lo}..{hi}); {value!r} does not fit")
        return v.to_bytes(size, "little", signed=signed)
    if t.kind in (ENUM, ENUM64):
        if isinstance(value, float):
            raise ValueError(f"{what} is enum {t.name}; {value!r} is a float")
        size = t.size_or_type
        try:
            return int(value).to_bytes(size, "little", signed=t.kind_flag)
        except OverflowError:
            raise ValueError(f"{what} is enum {t.name} ({size} bytes); "
                             f"{value!r} does not fit") from None
    if t.kind == FLOAT and t.size_or_type in (4, 8):
        return struct.pack("<f" if t.size_or_type == 4 else "<d", float(value))
    if t.kind == PTR:
        raise ValueError(f"{what} is a pointer; ktstr does not write pointers")
    kinds = {STRUCT: "a struct", UNION: "a union", ARRAY: "an array"}
    raise ValueError(f"{what} is {kinds.get(t.kind, f'of BTF kind {t.kind}')}; name one of "
                     "its scalar members with a dotted path (var.member)")
