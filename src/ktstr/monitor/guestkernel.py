"""A booted guest kernel opened from the host: found, translated, typed.

`GuestKernel.open(mem)` finds vmcoreinfo, sets up address translation (reading
`page_offset_base` and `__per_cpu_offset` from the guest), and loads the kernel's
layout (symbols and offsets, cached per BUILD-ID). It then answers ad-hoc questions
(a symbol's address, a per-CPU variable, a task's comm) and gives the sampler
(`ktstr.monitor.rqreader.RqReader`) and the watchdog override what they need.
"""

from __future__ import annotations

import struct

from ktstr.errors import MonitorUnavailable
from ktstr.monitor.guestmem import GuestMemory
from ktstr.monitor.layout import KernelLayout, load_layout
from ktstr.monitor.symtab import SymbolTable, load_symtab
from ktstr.monitor.translate import AddressSpace
from ktstr.monitor.vmcoreinfo import VmcoreInfo, find_vmcoreinfo

TASK_COMM_LEN = 16


class GuestKernel:
    def __init__(self, mem: GuestMemory, info: VmcoreInfo, aspace: AddressSpace,
                 layout: KernelLayout, nr_cpus: int) -> None:
        self.mem = mem
        self.info = info
        self.aspace = aspace
        self.layout = layout
        self.nr_cpus = nr_cpus
        self._symtab: SymbolTable | None = None

    @classmethod
    def open(cls, mem: GuestMemory, nr_cpus: int | None = None) -> GuestKernel:
        """Everything needed to read the guest's kernel; MonitorUnavailable says why not.

        `nr_cpus`: how many CPUs to read (the VM's vCPUs); default the kernel's
        `nr_cpu_ids`. The guest must have booted far enough to have written
        vmcoreinfo and set up its per-CPU areas.
        """
        try:
            return cls._open(mem, nr_cpus)
        except (struct.error, ValueError, IndexError) as e:  # garbage where a table should be
            raise MonitorUnavailable(f"cannot read the guest kernel's tables: {e}") from e

    @classmethod
    def _open(cls, mem: GuestMemory, nr_cpus: int | None) -> GuestKernel:
        info = find_vmcoreinfo(mem)
        top = info.symbols.get("init_top_pgt", info.symbols.get("swapper_pg_dir", 0))
        aspace = AddressSpace(mem, phys_base=info.phys_base, top_pgt=top,
                              l5=info.pgtable_l5, sme_mask=info.numbers.get("sme_mask", 0))
        layout = load_layout(aspace, info)
        kernel = cls(mem, info, aspace, layout, 0)
        pob = kernel.symbol("page_offset_base")
        if pob is not None:
            aspace.set_direct_map(aspace.u64(pob))
        ids = aspace.u32(kernel.require("nr_cpu_ids"))
        n = ids if nr_cpus is None else min(nr_cpus, ids)
        if not 0 < n <= 8192:
            raise MonitorUnavailable(f"implausible nr_cpu_ids {ids} in the guest kernel")
        raw = aspace.read(kernel.require("__per_cpu_offset"), 8 * n)
        aspace.set_per_cpu_offsets(struct.unpack(f"<{n}Q", raw))
        kernel.nr_cpus = n
        return kernel

    # -- symbols and types ---------------------------------------------------

    def symbol(self, name: str) -> int | None:
        """`name`'s address in this boot (KASLR applied); None when the kernel lacks it."""
        return self.layout.symbol(name, self.info.kernel_offset)

    def require(self, name: str) -> int:
        addr = self.symbol(name)
        if addr is None:
            raise MonitorUnavailable(f"the guest kernel ({self.info.osrelease}) has no symbol "
                                     f"{name!r}")
        return addr

    def symtab(self) -> SymbolTable:
        """Every kernel symbol (for names outside the layout: watches), cached per
        BUILD-ID; the first call on a new kernel decodes kallsyms (~1.5 s)."""
        if self._symtab is None:
            self._symtab = load_symtab(self.aspace, self.info)
        return self._symtab

    def offset(self, path: str) -> int:
        return self.layout.offset(path)

    def per_cpu(self, name: str, cpu: int) -> int:
        return self.aspace.per_cpu(self.require(name), cpu)

    # -- reads ---------------------------------------------------------------

    def jiffies(self) -> int:
        return self.aspace.u64(self.require("jiffies_64"))

    def task_comm(self, task: int) -> str:
        return self.aspace.cstring(task + self.offset("task_struct.comm"), TASK_COMM_LEN)

    def task_pid(self, task: int) -> int:
        return self.aspace.u32(task + self.offset("task_struct.pid"))

    def rq(self, cpu: int) -> int:
        """The address of CPU `cpu`'s `struct rq`."""
        return self.per_cpu("runqueues", cpu)

    def scx_root(self) -> int:
        """The attached sched_ext scheduler's `struct scx_sched *` (0: none or no sched_ext)."""
        addr = self.symbol("scx_root")
        return 0 if addr is None else self.aspace.u64(addr)
