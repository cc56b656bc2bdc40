"""Every symbol of one kernel build, with its nm type, cached per BUILD-ID.

The layout (ktstr.monitor.layout) keeps the dozen symbols the monitor reads; a watch
may name any kernel variable, so its validation needs the whole kallsyms table (about
200,000 names on 7.2; decoding it from guest memory takes ~1.5 s, loading the cache
~0.2 s), so it is cached under the kernel's BUILD-ID after the first run that needs it.

File format: one `address type name` line per symbol, address in hex as if KASLR had
not moved the kernel (add the boot's KERNELOFFSET, as for the layout).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from ktstr.atomicfile import atomic_write
from ktstr.monitor.kallsyms import read_kallsyms_typed
from ktstr.monitor.translate import START_KERNEL_MAP, AddressSpace
from ktstr.monitor.vmcoreinfo import VmcoreInfo
from ktstr.vm.kernel import cache_root

#: The kernel image's regions by their boundary symbols, most specific first. The nm
#: type kallsyms stores is no guide on 7.x (`jiffies_64` is "T", `map_idr` "t"); the
#: addresses are.
REGIONS = (
    ("percpu", "__per_cpu_start", "__per_cpu_end"),
    ("text", "_stext", "_etext"),
    ("ro_after_init", "__start_ro_after_init", "__end_ro_after_init"),
    ("rodata", "__start_rodata", "__end_rodata"),
    ("data", "_sdata", "_edata"),
    ("bss", "__bss_start", "__bss_stop"),
    ("init", "__init_begin", "__init_end"),
)
WRITABLE = frozenset(("data", "bss"))


@dataclass(frozen=True)
class SymbolTable:
    build_id: str
    symbols: dict[str, tuple[int, str]]  # name -> (address at KERNELOFFSET 0, nm type)

    def get(self, name: str) -> tuple[int, str] | None:
        return self.symbols.get(name)

    def address(self, name: str, kernel_offset: int) -> int | None:
        found = self.symbols.get(name)
        if found is None:
            return None
        addr = found[0]
        return addr + kernel_offset if addr >= START_KERNEL_MAP else addr

    def region(self, addr: int) -> str:
        """Where `addr` (KERNELOFFSET 0) lies in the kernel image: one of REGIONS' names,
        or "other" (modules, absolute symbols, or boundaries this kernel lacks)."""
        for name, start, end in REGIONS:
            lo, hi = self.symbols.get(start), self.symbols.get(end)
            if lo is not None and hi is not None and lo[0] <= addr < hi[0]:
                return name
        return "other"

    def near(self, name: str, n: int = 5) -> list[str]:
        """Writable variables whose names resemble `name`: the ones containing it (or
        contained in it) first, then difflib's close matches."""
        data = [s for s, (a, _t) in self.symbols.items() if self.region(a) in WRITABLE]
        low = name.lower()
        hits = sorted((s for s in data if low in s.lower() or (len(s) > 3 and s in name)),
                      key=len)[:n]
        if len(hits) < n:
            hits += [s for s in difflib.get_close_matches(name, data, n, cutoff=0.75)
                     if s not in hits][:n - len(hits)]
        return hits

    def to_text(self) -> str:
        return "".join(f"{addr:x} {t} {name}\n" for name, (addr, t) in self.symbols.items())

    @classmethod
    def from_text(cls, build_id: str, text: str) -> SymbolTable:
        symbols: dict[str, tuple[int, str]] = {}
        for line in text.splitlines():
            addr, t, name = line.split(" ", 2)
            symbols.setdefault(name, (int(addr, 16), t))
        return cls(build_id, symbols)


def symtab_cache_path(build_id: str) -> Path:
    return cache_root() / "monitor" / f"{build_id}.symbols"


def cached_symtab(build_id: str) -> SymbolTable | None:
    """This build's table if a boot of it has cached one, else None."""
    try:
        text = symtab_cache_path(build_id).read_text()
    except OSError:
        return None
    try:
        return SymbolTable.from_text(build_id, text)
    except ValueError:
        return None


def load_symtab(aspace: AddressSpace, info: VmcoreInfo) -> SymbolTable:
    """The running kernel's whole symbol table, decoded and cached on first use."""
    cached = cached_symtab(info.build_id)
    if cached is not None and cached.symbols:
        return cached
    found = read_kallsyms_typed(aspace, info)
    table = SymbolTable(info.build_id, {
        name: (addr - info.kernel_offset if addr >= START_KERNEL_MAP else addr, t)
        for name, (addr, t) in found.items()})
    with atomic_write(symtab_cache_path(info.build_id)) as f:
        f.write(table.to_text())
    return table
