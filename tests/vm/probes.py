"""What VM test bodies use to watch their workers from the kernel's side while they run.

Not a test module. `Sampler` calls a probe on a thread every `period` seconds for
as long as a workload runs; `read` tolerates a task or cgroup that went away
between being listed and being read.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from ktstr import AssertResult
from ktstr.system.proc import parse_sched
from ktstr.work.report import WorkerReport


def read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # the task or cgroup went away between listing and reading
        return None


def sched_field(pid: int, key: str) -> float | None:
    """One `key : value` of /proc/<pid>/sched (ktstr.system.proc.parse_sched), if present."""
    return parse_sched(read(f"/proc/{pid}/sched") or "").get(key)


def cgroup_pids(cgroup_dir: Path) -> list[int]:
    return [int(p) for p in (read(str(cgroup_dir / "cgroup.procs")) or "").split()]


class Sampler:
    """Call `fn` every `period` seconds on a thread while the workload runs."""

    def __init__(self, fn: Callable[[], None], period: float) -> None:
        self.fn = fn
        self.period = period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.samples = 0

    def _loop(self) -> None:
        while not self.stop.wait(self.period):
            self.fn()
            self.samples += 1

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def reports_by_cgroup(result: AssertResult) -> dict[str, list[WorkerReport]]:
    """The result's worker reports by cgroup name; a worker that failed fails the body."""
    out: dict[str, list[WorkerReport]] = {}
    for r in result.reports:
        assert not r.error, (r.tid, r.error)
        out.setdefault(r.cgroup.rpartition("/")[2], []).append(r)
    return out


def qemu_run_id(qemu: int) -> str:
    """The run id of the VM of qemu process `qemu`: it names every file the VM makes on
    the host (guest RAM in /dev/shm, its socket directory), each removed from the file
    system as soon as qemu has it open (ktstr.vm.machine)."""
    cmdline = Path(f"/proc/{qemu}/cmdline").read_text(errors="replace")
    m = re.search(r"ktstr-([0-9a-f]{12})-node0", cmdline)
    assert m, cmdline
    return m.group(1)


def host_leftovers(run_id: str) -> list[str]:
    """Files of the VM `run_id` still on the host: only its own, so that VMs of other
    tests running at the same time (`-n N`) do not count."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    return [p.name for d in (Path("/dev/shm"), tmp) for p in d.glob(f"ktstr-{run_id}*")]
