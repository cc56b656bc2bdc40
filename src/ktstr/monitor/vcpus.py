"""The host CPU time each vCPU got: what tells a stalled guest CPU from a descheduled one.

Under emulation a vCPU is a qemu thread that the host may not run for a while;
its guest runqueue clock then stands still without anything being wrong in the
guest. QMP `query-cpus-fast` names each vCPU's host thread
(ktstr.vm.qemu.vcpu_threads); its schedstat (ktstr.system.proc) says how much CPU
that thread has had, in nanoseconds.
"""

from __future__ import annotations

from collections.abc import Mapping

from ktstr.system.fs import SysIoError
from ktstr.system.proc import thread_cpu_ns


class VcpuClock:
    """Reads the host CPU time of every vCPU thread of one qemu process."""

    def __init__(self, qemu_pid: int, threads: Mapping[int, int]) -> None:
        self._pid = qemu_pid
        self._threads = dict(threads)

    def read(self) -> dict[int, int]:
        """cpu index -> nanoseconds on a host CPU so far; a vCPU whose thread is gone
        (qemu exiting) is left out."""
        out: dict[int, int] = {}
        for cpu, tid in self._threads.items():
            try:
                out[cpu] = thread_cpu_ns(self._pid, tid)
            except (OSError, SysIoError):
                continue
        return out
