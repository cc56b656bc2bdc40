"""Everything the monitor derives from one kernel build, computed once and cached.

The symbols it reads (as if KASLR had not moved the kernel: add the boot's
KERNELOFFSET) and the struct member offsets and sizes from the kernel's BTF, keyed by
the vmcoreinfo BUILD-ID, in `<cache>/monitor/<build-id>.json`. Deriving takes ~2 s
(decoding kallsyms is most of it); loading the JSON, milliseconds.

The BTF is read from the guest itself (`__start_BTF`..`__stop_BTF` in the kernel
image), so no vmlinux is needed on the host; it is what /sys/kernel/btf/vmlinux shows.
Nothing here is hard-coded per kernel version: a member this kernel lacks is simply
absent from `fields`, and the reader decides what that means (no sched_ext: never
attached; no core runqueue field: MonitorUnavailable).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ktstr.atomicfile import atomic_write
from ktstr.errors import MonitorUnavailable
from ktstr.monitor.btf import Btf, BtfError
from ktstr.monitor.kallsyms import read_kallsyms
from ktstr.monitor.translate import START_KERNEL_MAP, AddressSpace
from ktstr.monitor.vmcoreinfo import VmcoreInfo
from ktstr.vm.kernel import cache_root

LAYOUT_VERSION = 2  # bump when what is derived changes: older cache files are ignored

SYMBOLS = (
    "jiffies_64", "runqueues", "__per_cpu_offset", "page_offset_base", "nr_cpu_ids",
    "init_task", "__start_BTF", "__stop_BTF",
    "scx_root", "scx_enable_state_var", "scx_watchdog_timeout",  # sched_ext, if built in
)
CORE_SYMBOLS = ("jiffies_64", "runqueues", "__per_cpu_offset", "nr_cpu_ids",
                "__start_BTF", "__stop_BTF")

FIELDS = (
    "rq.nr_running", "rq.clock", "rq.curr", "rq.cpu",
    "task_struct.pid", "task_struct.comm",
    "rq.scx.nr_running", "rq.scx.local_dsq.nr",
    "scx_sched.ops.name", "scx_sched.watchdog_timeout", "scx_sched.pcpu",
    "scx_sched_pcpu.event_stats", "scx_sched.exit_kind",
)
CORE_FIELDS = ("rq.nr_running", "rq.clock", "rq.curr", "task_struct.pid",
               "task_struct.comm")
EVENT_STRUCT = "scx_event_stats"
EVENT_PREFIX = "SCX_EV_"


@dataclass(frozen=True)
class KernelLayout:
    build_id: str
    osrelease: str
    symbols: dict[str, int]  # name -> address with KERNELOFFSET 0
    fields: dict[str, tuple[int, int]]  # "rq.scx.local_dsq.nr" -> (offset, size)
    events: dict[str, int] = field(default_factory=dict)  # "select_cpu_fallback" -> offset
    enable_states: dict[str, int] = field(default_factory=dict)  # enum scx_enable_state
    exit_kinds: dict[str, int] = field(default_factory=dict)  # enum scx_exit_kind
    version: int = LAYOUT_VERSION

    def symbol(self, name: str, kernel_offset: int) -> int | None:
        """`name`'s address in a boot with this KASLR offset; None when not in the kernel."""
        addr = self.symbols.get(name)
        if addr is None:
            return None
        return addr + kernel_offset if addr >= START_KERNEL_MAP else addr

    def offset(self, path: str) -> int:
        return self.fields[path][0]

    def has(self, *paths: str) -> bool:
        return all(p in self.fields for p in paths)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KernelLayout:
        d = json.loads(text)
        d["fields"] = {k: (v[0], v[1]) for k, v in d["fields"].items()}
        return cls(**d)


def layout_from_btf(btf: Btf, build_id: str, osrelease: str,
                    symbols: dict[str, int]) -> KernelLayout:
    """The offsets the monitor reads, from this kernel's BTF (pure: unit-testable)."""
    fields: dict[str, tuple[int, int]] = {}
    for path in FIELDS:
        try:
            f = btf.field(path)
        except BtfError:
            continue
        fields[path] = (f.offset, f.size)
    missing = [p for p in CORE_FIELDS if p not in fields]
    if missing:
        raise MonitorUnavailable(f"the kernel's BTF lacks {', '.join(missing)} "
                                 f"(kernel {osrelease}): cannot read its runqueues")
    events: dict[str, int] = {}
    with contextlib.suppress(BtfError):
        for m in btf.members(btf.struct(EVENT_STRUCT).id):
            name = m.name.removeprefix(EVENT_PREFIX).lower()
            events[name] = m.bit_offset // 8
    states: dict[str, int] = {}
    with contextlib.suppress(BtfError):
        states = btf.enum("scx_enable_state")
    exits: dict[str, int] = {}
    with contextlib.suppress(BtfError):
        exits = btf.enum("scx_exit_kind")
    return KernelLayout(build_id, osrelease, symbols, fields, events, states, exits)


def derive_layout(aspace: AddressSpace, info: VmcoreInfo) -> KernelLayout:
    """Decode the guest's kallsyms and BTF into a layout (the slow path, ~2 s)."""
    found = read_kallsyms(aspace, info, SYMBOLS)
    missing = [s for s in CORE_SYMBOLS if s not in found]
    if missing:
        raise MonitorUnavailable(f"the guest kernel's kallsyms lack {', '.join(missing)} "
                                 f"(kernel {info.osrelease}); hint: CONFIG_KALLSYMS_ALL "
                                 "and CONFIG_DEBUG_INFO_BTF are needed")
    start, stop = found["__start_BTF"], found["__stop_BTF"]
    try:
        btf = Btf(aspace.read(start, stop - start))
    except BtfError as e:
        raise MonitorUnavailable(f"the guest kernel's BTF at {start:#x} is unreadable: {e}") \
            from e
    unshifted = {name: addr - info.kernel_offset if addr >= START_KERNEL_MAP else addr
                 for name, addr in found.items()}
    return layout_from_btf(btf, info.build_id, info.osrelease, unshifted)


def layout_cache_path(build_id: str) -> Path:
    return cache_root() / "monitor" / f"{build_id}.json"


def load_layout(aspace: AddressSpace, info: VmcoreInfo) -> KernelLayout:
    """The cached layout of this kernel build, derived and cached on first use."""
    path = layout_cache_path(info.build_id)
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        cached = KernelLayout.from_json(path.read_text())
        if cached.version == LAYOUT_VERSION and cached.build_id == info.build_id:
            return cached
    layout = derive_layout(aspace, info)
    with atomic_write(path) as f:
        f.write(layout.to_json())
    return layout

