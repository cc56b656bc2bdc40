"""The kernel's own symbol table, decoded from guest memory.

Debian's small kernel packages ship no System.map and their vmlinux has no symbol
table, but every `CONFIG_KALLSYMS` kernel carries its compressed symbol table, and
vmcoreinfo (6.0+) gives the addresses of its arrays. Format (scripts/kallsyms.c):
`kallsyms_names` is, per symbol, a length (one byte, or two when the first has bit 7
set: low 7 bits, then the next byte << 7) followed by that many token indices;
`kallsyms_token_index` holds 256 u16 offsets into the NUL-separated
`kallsyms_token_table`; the expansion's first character is the nm type.
`kallsyms_offsets` is one s32 per symbol: on current kernels (7.x checked) relative
to the address of that very entry; older x86-64 ones (with `kallsyms_relative_base`
in vmcoreinfo, KALLSYMS_ABSOLUTE_PERCPU) store absolute values when >= 0 and
`relative_base - 1 - offset` otherwise (only the current layout is tested here).

drgn 0.3.0's loader (`_linux_helper_load_builtin_kallsyms`) stops on a 7.2 kernel with
"zero-length symbol in kallsyms" (it predates the PC-relative offsets), so this is
our own. Decoding all ~200,000 symbols of 7.2 takes ~1.8 s in Python; callers cache
what they need per BUILD-ID (ktstr.monitor.layout).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ktstr.errors import MonitorUnavailable
from ktstr.monitor.translate import AddressSpace
from ktstr.monitor.vmcoreinfo import VmcoreInfo

REQUIRED = ("kallsyms_names", "kallsyms_num_syms", "kallsyms_token_table",
            "kallsyms_token_index", "kallsyms_offsets")


def decode_names(names: bytes, count: int, tokens: list[bytes]) -> list[bytes]:
    """Every symbol's expanded name, nm type character first."""
    out = []
    pos = 0
    for _ in range(count):
        n = names[pos]
        pos += 1
        if n & 0x80:
            n = (n & 0x7F) | (names[pos] << 7)
            pos += 1
        out.append(b"".join([tokens[c] for c in names[pos:pos + n]]))
        pos += n
    return out


def symbol_address(offsets_va: int, index: int, offset: int, relative_base: int | None) -> int:
    if relative_base is not None:
        return offset if offset >= 0 else relative_base - 1 - offset
    return offsets_va + 4 * index + offset


def read_kallsyms(aspace: AddressSpace, info: VmcoreInfo,
                  wanted: Iterable[str] | None = None) -> dict[str, int]:
    """name -> address for `wanted` (every symbol when None); the first of equal names."""
    return {name: addr for name, (addr, _t) in read_kallsyms_typed(aspace, info, wanted).items()}


def read_kallsyms_typed(aspace: AddressSpace, info: VmcoreInfo,
                        wanted: Iterable[str] | None = None) -> dict[str, tuple[int, str]]:
    """name -> (address, nm type character) for `wanted` (every symbol when None)."""
    syms = info.symbols
    missing = [name for name in REQUIRED if name not in syms]
    if missing:
        raise MonitorUnavailable(f"the guest kernel ({info.osrelease}) exports no kallsyms "
                                 f"tables in vmcoreinfo (missing {', '.join(missing)}); "
                                 "hint: kernels from 6.0 on with CONFIG_KALLSYMS do")
    count = aspace.u32(syms["kallsyms_num_syms"])
    table_va, index_va = syms["kallsyms_token_table"], syms["kallsyms_token_index"]
    if not 0 < count < 10_000_000 or not 0 < index_va - table_va < 1 << 16:
        raise MonitorUnavailable(f"implausible kallsyms tables in the guest kernel "
                                 f"({count} symbols, token table {index_va - table_va} bytes)")
    table = aspace.read(table_va, index_va - table_va)
    index = struct.unpack("<256H", aspace.read(index_va, 512))
    tokens = [table[o:table.index(b"\0", o)] for o in index]
    names_va = syms["kallsyms_names"]
    # The arrays follow one another (scripts/kallsyms.c output order): names end
    # where the markers or the token table begin, whichever comes first.
    names = aspace.read(names_va, max(0, min(v for v in (table_va, syms["kallsyms_offsets"])
                                             if v > names_va) - names_va))
    offsets_va = syms["kallsyms_offsets"]
    offsets = struct.unpack(f"<{count}i", aspace.read(offsets_va, 4 * count))
    base = None
    if "kallsyms_relative_base" in syms:
        base = aspace.u64(syms["kallsyms_relative_base"])
    want = None if wanted is None else set(wanted)
    found: dict[str, tuple[int, str]] = {}
    try:
        decoded = decode_names(names, count, tokens)
    except IndexError:
        raise MonitorUnavailable("the guest's kallsyms names run past their table; "
                                 "unknown kallsyms layout") from None
    for i, raw in enumerate(decoded):
        name = raw[1:].decode("ascii", "replace")
        if (want is None or name in want) and name not in found:
            found[name] = (symbol_address(offsets_va, i, offsets[i], base),
                           chr(raw[0]) if raw else "?")
    return found
