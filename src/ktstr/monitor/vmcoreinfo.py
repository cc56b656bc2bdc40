"""Finding the guest kernel in its RAM: the vmcoreinfo note.

Every kernel with `CONFIG_VMCORE_INFO` keeps a page of `KEY=value` lines for crash
tools (kernel/vmcore_info.c, arch/x86/kernel/vmcore_info_64.c), written at boot. It
gives what the host needs to start reading: the KASLR offset (`KERNELOFFSET`),
`NUMBER(phys_base)` (where the kernel image sits physically), the top page table
(`SYMBOL(init_top_pgt)`), whether paging is 5-level, the `BUILD-ID` that keys every
cache, and the kallsyms tables' addresses. Scanning 2 GiB for `OSRELEASE=` takes
~0.04-0.08 s; the text appears twice (the data page and the ELF note), identically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ktstr.errors import MonitorUnavailable
from ktstr.monitor.guestmem import GuestMemory

MARKER = b"OSRELEASE="
MAX_LEN = 4096  # VMCOREINFO_BYTES: one page
_LINE = re.compile(r"(?P<key>[A-Z_-]+(?:\((?P<arg>[^)]*)\))?)=(?P<value>.*)")


@dataclass(frozen=True, slots=True)
class VmcoreInfo:
    osrelease: str
    build_id: str
    kernel_offset: int  # KASLR shift of the kernel image's virtual addresses (0: none)
    phys_base: int  # physical address of __START_KERNEL_map's page
    pgtable_l5: bool
    symbols: dict[str, int] = field(default_factory=dict)  # SYMBOL(name)=hex
    numbers: dict[str, int] = field(default_factory=dict)  # NUMBER(name)=dec or 0xhex
    offsets: dict[str, int] = field(default_factory=dict)  # OFFSET(struct.member)=dec
    sizes: dict[str, int] = field(default_factory=dict)  # SIZE(struct)=dec

    def symbol(self, name: str) -> int:
        try:
            return self.symbols[name]
        except KeyError:
            raise MonitorUnavailable(f"the guest kernel's vmcoreinfo has no SYMBOL({name}) "
                                     f"(kernel {self.osrelease})") from None


def _int(text: str) -> int:
    return int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text)


def parse(text: str) -> VmcoreInfo:
    """The `KEY=value` lines of a vmcoreinfo page."""
    plain: dict[str, str] = {}
    tables: dict[str, dict[str, int]] = {"SYMBOL": {}, "NUMBER": {}, "OFFSET": {}, "SIZE": {}}
    for line in text.splitlines():
        m = _LINE.fullmatch(line.strip())
        if not m:
            continue
        key, arg, value = m["key"], m["arg"], m["value"]
        kind = key.split("(")[0]
        if arg is not None and kind in tables:
            try:
                tables[kind][arg] = int(value, 16) if kind == "SYMBOL" else _int(value)
            except ValueError:
                continue
        else:
            plain[key] = value
    missing = [k for k in ("OSRELEASE", "BUILD-ID", "KERNELOFFSET") if k not in plain]
    if "phys_base" not in tables["NUMBER"]:
        missing.append("NUMBER(phys_base)")
    if "init_top_pgt" not in tables["SYMBOL"] and "swapper_pg_dir" not in tables["SYMBOL"]:
        missing.append("SYMBOL(init_top_pgt)")
    if missing:
        raise MonitorUnavailable(f"the guest's vmcoreinfo lacks {', '.join(missing)}: not an "
                                 "x86-64 kernel this monitor can read")
    return VmcoreInfo(osrelease=plain["OSRELEASE"], build_id=plain["BUILD-ID"],
                      kernel_offset=int(plain["KERNELOFFSET"], 16),
                      phys_base=tables["NUMBER"]["phys_base"],
                      pgtable_l5=tables["NUMBER"].get("pgtable_l5_enabled", 0) == 1,
                      symbols=tables["SYMBOL"], numbers=tables["NUMBER"],
                      offsets=tables["OFFSET"], sizes=tables["SIZE"])


def find_vmcoreinfo(mem: GuestMemory) -> VmcoreInfo:
    """Scan guest RAM for the vmcoreinfo text; the first copy that parses wins.

    A page that merely contains "OSRELEASE=" (a file in the page cache, this very
    module loaded by the guest's Python) does not parse and is skipped.
    """
    reasons = []
    for paddr in mem.find_all(MARKER):
        raw = mem.read(paddr, MAX_LEN)
        text = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        try:
            return parse(text)
        except MonitorUnavailable as e:
            reasons.append(str(e))
    why = reasons[0] if reasons else "no OSRELEASE= anywhere in guest RAM"
    raise MonitorUnavailable(f"cannot find the guest kernel's vmcoreinfo: {why}; hint: "
                             "the kernel needs CONFIG_VMCORE_INFO (and has not booted yet?)")
