"""The attached sched_ext scheduler's BPF maps and globals, read (and written) from the host.

A snapshot's data path: the plumbing stops every vCPU, calls `scheduler_state`, resumes.
Everything comes from guest memory, typed by BTF, never by hard-coded offsets:
- the maps are the kernel's `map_idr` (an xarray of `struct bpf_map *`); the scheduler's
  are its struct_ops map (whose copied `sched_ext_ops.name` is `scx_root`'s ops name) and
  every map sharing that map's `struct btf *` (libbpf loads one BTF per object file);
- the program's BTF is the guest's own copy (`struct btf`: `data`, `data_size`), parsed
  by `ktstr.monitor.btf.Btf` and rendered by `ktstr.monitor.btfvalue`;
- kernel struct offsets (`bpf_map`, `bpf_array`, `bpf_htab`, `htab_elem`, `bpf_arena`,
  ...) come from the vmlinux BTF, derived once per kernel build and cached next to the
  monitor's layout (`<cache>/monitor/<build-id>-bpf.json`).
The arena's globals (`__arena` variables, the `.addr_space.1` DATASEC) are read too:
current schedulers keep their counters there (scx_qmap's `qa.nr_enqueued`, ...). libbpf
puts them at the arena's end (older libbpf: its start; both are tried).
"""

from __future__ import annotations

import contextlib
import json
import struct
from dataclasses import asdict, dataclass
from typing import Any

from ktstr.atomicfile import atomic_write
from ktstr.errors import KtstrError, MonitorUnavailable
from ktstr.monitor.btf import DATASEC, STRUCT, UNION, Btf, BtfError
from ktstr.monitor.btfvalue import datasec_vars, encode_scalar, render, render_datasec
from ktstr.monitor.guestkernel import GuestKernel
from ktstr.monitor.kallsyms import read_kallsyms
from ktstr.vm.kernel import cache_root

BPF_LAYOUT_VERSION = 2  # bump when FIELDS or what is derived changes
PAGE_SIZE = 4096
OBJ_NAME_LEN = 16
# kernel/bpf/arena.c: GUARD_SZ = round_up(1 << 16 (bpf_insn.off is s16), 2 * PAGE_SIZE);
# the kernel's view of the arena starts GUARD_SZ / 2 into `kern_vm`.
ARENA_GUARD_HALF = (1 << 16) // 2
ARENA_DATASEC = ".addr_space.1"
GLOBAL_SECTIONS = (".bss", ".data", ".rodata")
MAX_IDR_NODES = 100_000

FIELDS = (
    "idr.idr_rt", "xarray.xa_head", "xa_node.shift", "xa_node.slots",
    "bpf_map.map_type", "bpf_map.key_size", "bpf_map.value_size", "bpf_map.max_entries",
    "bpf_map.map_flags", "bpf_map.id", "bpf_map.btf_key_type_id", "bpf_map.btf_value_type_id",
    "bpf_map.btf_vmlinux_value_type_id", "bpf_map.btf", "bpf_map.name",
    "btf.data", "btf.data_size", "btf.base_btf",
    "bpf_array.elem_size", "bpf_array.value", "bpf_array.pptrs",
    "bpf_htab.buckets", "bpf_htab.n_buckets", "bucket.head", "hlist_nulls_head.first",
    "hlist_nulls_node.next", "htab_elem.hash_node", "htab_elem.key",
    "bpf_struct_ops_map.kvalue", "bpf_struct_ops_value.data",
    "bpf_struct_ops_map.links", "bpf_struct_ops_map.funcs_cnt", "bpf_link.prog", "bpf_prog.aux",
    "bpf_prog_aux.used_maps", "bpf_prog_aux.used_map_cnt",
    "bpf_arena.user_vm_start", "bpf_arena.kern_vm", "vm_struct.addr",
)


@dataclass(frozen=True)
class BpfLayout:
    """What reading BPF maps needs from one kernel build (pure data, JSON-cached)."""

    build_id: str
    map_idr: int  # address with KERNELOFFSET 0
    fields: dict[str, int]
    map_types: dict[int, str]  # enum bpf_map_type value -> "percpu_array"
    ops_name_offset: dict[int, int]  # vmlinux value type id -> offset of ops.name in kvalue
    version: int = BPF_LAYOUT_VERSION

    @classmethod
    def from_json(cls, text: str) -> BpfLayout:
        d = json.loads(text)
        d["map_types"] = {int(k): v for k, v in d["map_types"].items()}
        d["ops_name_offset"] = {int(k): v for k, v in d["ops_name_offset"].items()}
        return cls(**d)


def bpf_layout_from_btf(btf: Btf, build_id: str, map_idr: int) -> BpfLayout:
    """The offsets `scheduler_state` uses, from the vmlinux BTF (pure: unit-testable)."""
    fields: dict[str, int] = {}
    for path in FIELDS:
        with contextlib.suppress(BtfError):
            fields[path] = btf.offsetof(path)
    with contextlib.suppress(BtfError):
        fields["sizeof.bucket"] = btf.size(btf.struct("bucket").id)
    types = {v: k.removeprefix("BPF_MAP_TYPE_").lower()
             for k, v in btf.enum("bpf_map_type").items() if not k.startswith("__")}
    ops: dict[int, int] = {}
    for tid in range(1, len(btf)):
        t = btf.type(tid)
        if t.kind != STRUCT or not t.name.startswith("bpf_struct_ops_"):
            continue
        with contextlib.suppress(BtfError, StopIteration):
            data = next(m for m in btf.members(tid) if m.name == "data")
            inner = next(m for m in btf.members(data.type_id) if m.name == "name")
            ops[tid] = data.bit_offset // 8 + inner.bit_offset // 8
    return BpfLayout(build_id, map_idr, fields, types, ops)


_LAYOUTS: dict[str, BpfLayout] = {}
_PROGRAM_BTFS: dict[bytes, Btf] = {}  # keyed by the raw BTF: equal bytes, same types


def bpf_layout(kernel: GuestKernel) -> BpfLayout:
    """This kernel's BpfLayout: in memory, else the cache file, else derived (~3 s)."""
    bid = kernel.info.build_id
    if bid in _LAYOUTS:
        return _LAYOUTS[bid]
    path = cache_root() / "monitor" / f"{bid}-bpf.json"
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        cached = BpfLayout.from_json(path.read_text())
        if cached.version == BPF_LAYOUT_VERSION and cached.build_id == bid:
            _LAYOUTS[bid] = cached
            return cached
    start, stop = kernel.require("__start_BTF"), kernel.require("__stop_BTF")
    vmlinux = Btf(kernel.aspace.read(start, stop - start))
    found = read_kallsyms(kernel.aspace, kernel.info, ("map_idr",))
    if "map_idr" not in found:
        raise MonitorUnavailable(f"the guest kernel ({kernel.info.osrelease}) has no "
                                 "map_idr symbol: cannot find its BPF maps")
    layout = bpf_layout_from_btf(vmlinux, bid, found["map_idr"] - kernel.info.kernel_offset)
    with atomic_write(path) as f:
        f.write(json.dumps(asdict(layout), indent=1, sort_keys=True))
    _LAYOUTS[bid] = layout
    return layout


@dataclass(frozen=True)
class MapInfo:
    addr: int
    id: int
    name: str
    type: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf: int  # struct btf * (0: none)
    key_type: int
    value_type: int
    vmlinux_value_type: int


class _Reader:
    def __init__(self, kernel: GuestKernel, layout: BpfLayout) -> None:
        self.k = kernel
        self.a = kernel.aspace
        self.l = layout
        self.f = layout.fields

    def u32(self, addr: int) -> int:
        return self.a.u32(addr)

    def u64(self, addr: int) -> int:
        return self.a.u64(addr)

    # -- map_idr --------------------------------------------------------------

    def map_pointers(self) -> list[int]:
        """Every `struct bpf_map *` in map_idr (its xarray: internal entries are nodes)."""
        idr = self.l.map_idr + self.k.info.kernel_offset
        head = self.u64(idr + self.f["idr.idr_rt"] + self.f["xarray.xa_head"])
        out: list[int] = []
        stack, seen = [head], 0
        slots = self.f["xa_node.slots"]
        while stack:
            entry = stack.pop()
            if not entry:
                continue
            if entry & 3 == 2:
                if entry < 4096:  # retry / sibling entries
                    continue
                seen += 1
                if seen > MAX_IDR_NODES:
                    raise MonitorUnavailable("map_idr looks corrupt (too many nodes)")
                node = entry - 2
                raw = self.a.read(node + slots, 64 * 8)
                stack.extend(reversed(struct.unpack("<64Q", raw)))
            elif entry & 3 == 0:
                out.append(entry)
        return out

    def map_info(self, m: int) -> MapInfo:
        f = self.f
        mtype = self.u32(m + f["bpf_map.map_type"])
        return MapInfo(
            addr=m, id=self.u32(m + f["bpf_map.id"]),
            name=self.a.cstring(m + f["bpf_map.name"], OBJ_NAME_LEN),
            type=self.l.map_types.get(mtype, str(mtype)),
            key_size=self.u32(m + f["bpf_map.key_size"]),
            value_size=self.u32(m + f["bpf_map.value_size"]),
            max_entries=self.u32(m + f["bpf_map.max_entries"]),
            flags=self.u32(m + f["bpf_map.map_flags"]),
            btf=self.u64(m + f["bpf_map.btf"]),
            key_type=self.u32(m + f["bpf_map.btf_key_type_id"]),
            value_type=self.u32(m + f["bpf_map.btf_value_type_id"]),
            vmlinux_value_type=self.u32(m + f["bpf_map.btf_vmlinux_value_type_id"]))

    def struct_ops_name(self, m: MapInfo) -> str | None:
        off = self.l.ops_name_offset.get(m.vmlinux_value_type)
        if off is None:
            return None
        return self.a.cstring(m.addr + self.f["bpf_struct_ops_map.kvalue"] + off, 128)

    def used_maps(self, ops_map: int) -> set[int]:
        """The maps the struct_ops programs use (arena and maps without BTF included)."""
        f = self.f
        links = self.u64(ops_map + f["bpf_struct_ops_map.links"])
        n = self.u32(ops_map + f["bpf_struct_ops_map.funcs_cnt"])
        out: set[int] = set()
        if not links or not 0 < n <= 1024:
            return out
        for link in struct.unpack(f"<{n}Q", self.a.read(links, 8 * n)):
            if not link:
                continue
            prog = self.u64(link + f["bpf_link.prog"])
            aux = self.u64(prog + f["bpf_prog.aux"]) if prog else 0
            if not aux:
                continue
            cnt = self.u32(aux + f["bpf_prog_aux.used_map_cnt"])
            used = self.u64(aux + f["bpf_prog_aux.used_maps"])
            if used and 0 < cnt <= 64:
                out.update(struct.unpack(f"<{cnt}Q", self.a.read(used, 8 * cnt)))
        return out

    def program_btf(self, btf_addr: int) -> Btf:
        if self.u64(btf_addr + self.f["btf.base_btf"]):
            raise MonitorUnavailable("the scheduler's BTF is split on another BTF; "
                                     "ktstr reads only whole program BTF")
        data = self.u64(btf_addr + self.f["btf.data"])
        size = self.u32(btf_addr + self.f["btf.data_size"])
        raw = self.a.read(data, size)
        btf = _PROGRAM_BTFS.get(raw)
        if btf is None:  # parsed once per scheduler load, not per capture
            if len(_PROGRAM_BTFS) >= 8:
                _PROGRAM_BTFS.clear()
            btf = _PROGRAM_BTFS[raw] = Btf(raw)
        return btf

    # -- values ---------------------------------------------------------------

    def array_value_addr(self, m: MapInfo, index: int) -> int:
        elem = self.u32(m.addr + self.f["bpf_array.elem_size"])
        return m.addr + self.f["bpf_array.value"] + index * elem

    def percpu(self, ptr: int, size: int) -> list[bytes]:
        return [self.a.read(self.a.per_cpu(ptr, cpu), size) for cpu in range(self.k.nr_cpus)]

    def array_entries(self, m: MapInfo, limit: int) -> tuple[list[tuple[bytes, Any]], bool]:
        n = min(m.max_entries, limit)
        out: list[tuple[bytes, Any]] = []
        if m.type == "percpu_array":
            base = m.addr + self.f["bpf_array.pptrs"]
            for i in range(n):
                out.append((i.to_bytes(4, "little"),
                            self.percpu(self.u64(base + 8 * i), m.value_size)))
        else:
            elem = self.u32(m.addr + self.f["bpf_array.elem_size"])
            raw = self.a.read(m.addr + self.f["bpf_array.value"], n * elem)
            for i in range(n):
                out.append((i.to_bytes(4, "little"), raw[i * elem:i * elem + m.value_size]))
        return out, m.max_entries > n

    def hash_entries(self, m: MapInfo, limit: int) -> tuple[list[tuple[bytes, Any]], bool]:
        f = self.f
        buckets = self.u64(m.addr + f["bpf_htab.buckets"])
        n_buckets = self.u32(m.addr + f["bpf_htab.n_buckets"])
        stride = f["sizeof.bucket"]
        key_off = f["htab_elem.key"]
        node_off = f["htab_elem.hash_node"]
        vo = key_off + (m.key_size + 7) // 8 * 8
        percpu = m.type in ("percpu_hash", "lru_percpu_hash")
        out: list[tuple[bytes, Any]] = []
        raw = self.a.read(buckets, n_buckets * stride)
        first_off = f["bucket.head"] + f["hlist_nulls_head.first"]
        for b in range(n_buckets):
            node = int.from_bytes(raw[b * stride + first_off:b * stride + first_off + 8],
                                  "little")
            hops = 0
            while node and not node & 1:  # an odd pointer is the list's nulls marker
                if len(out) >= limit:
                    return out, True
                elem = node - node_off
                blob = self.a.read(elem + key_off, vo - key_off + (8 if percpu
                                                                   else m.value_size))
                key = blob[:m.key_size]
                if percpu:
                    value: Any = self.percpu(int.from_bytes(blob[vo - key_off:], "little"),
                                             m.value_size)
                else:
                    value = blob[vo - key_off:]
                out.append((key, value))
                node = self.u64(node + f["hlist_nulls_node.next"])
                hops += 1
                if hops > m.max_entries:
                    raise MonitorUnavailable(f"hash map {m.name}: bucket {b} loops")
        return out, False

    def arena_base(self, m: MapInfo) -> int:
        """The kernel address of arena offset 0 (the user's `user_vm_start`)."""
        kern_vm = self.u64(m.addr + self.f["bpf_arena.kern_vm"])
        start = self.u64(kern_vm + self.f["vm_struct.addr"]) + ARENA_GUARD_HALF
        user = self.u64(m.addr + self.f["bpf_arena.user_vm_start"])
        return start + (user & 0xFFFFFFFF)

    def arena_globals_addr(self, m: MapInfo, size: int) -> int:
        """Where libbpf put the arena's globals: its last pages (libbpf >= 1.7) or its
        first; the first place whose pages are mapped."""
        base = self.arena_base(m)
        rounded = (size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
        for off in (m.max_entries * PAGE_SIZE - rounded, 0):
            with contextlib.suppress(MonitorUnavailable):
                self.a.pa(base + off)
                self.a.pa(base + off + rounded - 1)
                return base + off
        raise MonitorUnavailable(f"arena {m.name}: its globals' pages are not mapped")


def _render_entries(btf: Btf | None, m: MapInfo,
                    entries: list[tuple[bytes, Any]]) -> list[dict[str, Any]]:
    def one(tid: int, raw: bytes) -> Any:
        if btf is not None and tid:
            return render(btf, tid, raw)
        return raw.hex()

    out = []
    for key, value in entries:
        k = one(m.key_type, key) if (btf is not None and m.key_type) else \
            int.from_bytes(key, "little") if len(key) in (1, 2, 4, 8) else key.hex()
        v = [one(m.value_type, x) for x in value] if isinstance(value, list) \
            else one(m.value_type, value)
        out.append({"key": k, "value": v})
    return out


ARRAY_TYPES = ("array", "percpu_array")
HASH_TYPES = ("hash", "percpu_hash", "lru_hash", "lru_percpu_hash")


def _scheduler_maps(r: _Reader) -> tuple[str | None, list[MapInfo]]:
    root = r.k.scx_root()
    if not root or not r.k.layout.has("scx_sched.ops.name"):
        return None, []
    ops = r.a.cstring(root + r.k.offset("scx_sched.ops.name"), 128)
    maps = [r.map_info(p) for p in r.map_pointers()]
    mine = [m for m in maps if m.type == "struct_ops" and r.struct_ops_name(m) == ops]
    if not mine:
        return ops, []
    owner = max(mine, key=lambda m: m.id)  # a newer load of the same scheduler wins
    used = r.used_maps(owner.addr)
    return ops, sorted((m for m in maps if m is owner or m.addr in used
                        or (owner.btf and m.btf == owner.btf)), key=lambda m: m.id)


def _section_of(btf: Btf | None, m: MapInfo) -> str | None:
    """The DATASEC name (".bss", ...) when `m` holds a section of globals."""
    if btf is None or not m.value_type:
        return None
    with contextlib.suppress(BtfError):
        t = btf.resolve(m.value_type)
        if t.kind == DATASEC:
            return t.name
    return None


def scheduler_state(kernel: GuestKernel, *, max_entries: int = 4096) -> dict[str, Any]:
    """The attached scheduler's maps and globals as JSON-able data (see module doc).

    Call it with the guest stopped (QMP `stop`) for a coherent picture. Each map reads
    at most `max_entries` entries; a longer one says `"truncated": true`.
    """
    layout = bpf_layout(kernel)
    r = _Reader(kernel, layout)
    try:
        ops, maps = _scheduler_maps(r)
    except (struct.error, ValueError) as e:
        raise MonitorUnavailable(f"cannot walk the guest's map_idr: {e}") from e
    out: dict[str, Any] = {"scheduler": ops, "maps": {}, "vars": {}}
    if ops is None:
        return out
    btfs: dict[int, Btf | None] = {}
    prog_btf = next((m.btf for m in maps if m.type == "struct_ops" and m.btf), 0)
    for m in maps:
        if m.btf not in btfs:
            btfs[m.btf] = r.program_btf(m.btf) if m.btf else None
        btf = btfs[m.btf]
        if m.type == "arena" and prog_btf:  # created without BTF; typed by the program's
            if prog_btf not in btfs:
                btfs[prog_btf] = r.program_btf(prog_btf)
            btf = btfs[prog_btf]
        section = _section_of(btf, m)
        key = m.name
        if section and section != m.name and section.startswith(m.name):
            key = section  # libbpf truncated ".data.qa_q_lock0" to the 15 bytes it keeps
        if key in out["maps"]:
            key = f"{key}#{m.id}"
        d: dict[str, Any] = {"type": m.type, "key_size": m.key_size,
                             "value_size": m.value_size, "max_entries": m.max_entries}
        try:
            if m.type in ARRAY_TYPES:
                entries, truncated = r.array_entries(m, max_entries)
            elif m.type in HASH_TYPES:
                entries, truncated = r.hash_entries(m, max_entries)
            else:
                d["unsupported"] = _why_unsupported(m.type)
                if m.type == "arena" and btf is not None:
                    out["vars"].update(_arena_vars(r, btf, m))
                out["maps"][key] = d
                continue
        except MonitorUnavailable as e:
            d["unsupported"] = f"unreadable: {e}"
            out["maps"][key] = d
            continue
        d["entries"] = _render_entries(btf, m, entries)
        d["truncated"] = truncated
        d["bound"] = max_entries  # the most entries a capture reads from one map
        if section and entries and btf is not None:
            d["section"] = section
            if section.split(".")[1] in ("bss", "data", "rodata"):
                out["vars"].update(render_datasec(btf, m.value_type, entries[0][1]))
        out["maps"][key] = d
    return out


def _why_unsupported(mtype: str) -> str:
    reasons = {
        "arena": "an arena has no entries; its globals (__arena variables) are in vars",
        "struct_ops": "the scheduler's ops table (function pointers), not data",
        "ringbuf": "a ring buffer is a stream consumed by user space, not a table",
        "user_ringbuf": "a ring buffer is a stream produced by user space, not a table",
        "task_storage": "per-task storage hangs off each task_struct, not off the map",
        "cgrp_storage": "per-cgroup storage hangs off each cgroup, not off the map",
        "inode_storage": "per-inode storage hangs off each inode, not off the map",
        "sk_storage": "per-socket storage hangs off each socket, not off the map",
    }
    return reasons.get(mtype, f"map type {mtype} is not read by ktstr (arrays and hash "
                              "maps are)")


def _arena_vars(r: _Reader, btf: Btf, m: MapInfo) -> dict[str, Any]:
    try:
        sec = btf.find(ARENA_DATASEC, DATASEC)
    except BtfError:
        return {}
    size = sec.size_or_type
    if not size:
        return {}
    addr = r.arena_globals_addr(m, size)
    return render_datasec(btf, sec.id, r.a.read(addr, size))


# -- writing -----------------------------------------------------------------


def _member_path(btf: Btf, tid: int, names: list[str], where: str) -> tuple[int, int]:
    """(byte offset, type id) of `a.b.c` inside type `tid`."""
    off = 0
    for name in names:
        t = btf.resolve(tid)
        if t.kind not in (STRUCT, UNION):
            raise KtstrError(f"{where} is not a struct; it has no member {name!r}")
        found = btf._member(t.id, name)
        if found is None:
            have = ", ".join(x.name for x in btf.members(t.id) if x.name)
            raise KtstrError(f"{where} has no member {name!r} (it has: {have})")
        member = next((x for x in btf.members(t.id) if x.name == name), None)
        if found[0] % 8 or (member is not None and member.bitfield_size):
            raise KtstrError(f"{where}.{name} is a bitfield; ktstr writes whole bytes only")
        off += found[0] // 8
        tid = found[1]
        where = f"{where}.{name}"
    return off, tid


def write_scheduler_var(kernel: GuestKernel, name: str, value: int | float | bool) -> Any:
    """Write a `.bss`/`.data` (or arena) global of the attached scheduler; returns the value
    read back. `name` may name a member of a struct global: `qa.test_error_cnt`."""
    r = _Reader(kernel, bpf_layout(kernel))
    ops, maps = _scheduler_maps(r)
    if ops is None:
        raise KtstrError(f"cannot write {name!r}: no sched_ext scheduler is attached")
    if not name or name.startswith("."):
        raise KtstrError(f"{name!r} is not a variable name")
    found: list[str] = []
    prog_btf = next((m.btf for m in maps if m.type == "struct_ops" and m.btf), 0)
    btfs: dict[int, Btf] = {}
    for m in maps:
        at = prog_btf if m.type == "arena" else m.btf
        if not at:
            continue
        btf = btfs.get(at) or btfs.setdefault(at, r.program_btf(at))
        if m.type == "arena":
            try:
                sec = btf.find(ARENA_DATASEC, DATASEC)
            except BtfError:
                continue
            base: int | None = None
            section = ARENA_DATASEC
            sec_id = sec.id
        else:
            sec_name = _section_of(btf, m)
            if sec_name is None or m.type != "array":
                continue
            base, section, sec_id = None, sec_name, m.value_type
        for vname, vtype, voff, _vsize in datasec_vars(btf, sec_id):
            found.append(vname)
            if name != vname and not name.startswith(vname + "."):
                continue  # "a.b": the variable "a.b" (a function's static) or a's member b
            var, path = vname, [p for p in name[len(vname) + 1:].split(".") if p]
            if section.startswith(".rodata"):
                raise KtstrError(f"{name!r} is in {m.name} (.rodata): read-only after the "
                                 "scheduler loaded (the verifier treats it as a constant); "
                                 "set it on the scheduler's command line instead")
            off, tid = _member_path(btf, vtype, path, var)
            try:
                raw = encode_scalar(btf, tid, value, name)
            except ValueError as e:
                raise KtstrError(str(e)) from None
            if base is None:
                base = r.array_value_addr(m, 0) if m.type == "array" else \
                    r.arena_globals_addr(m, btf.find(ARENA_DATASEC, DATASEC).size_or_type)
            addr = base + voff + off
            kernel.aspace.write(addr, raw)
            return render(btf, tid, kernel.aspace.read(addr, len(raw)))
    raise KtstrError(f"scheduler {ops!r} has no global {name!r}; it has: "
                     f"{', '.join(sorted(set(found))) or '(none)'}")
