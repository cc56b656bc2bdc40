"""The qemu command line, built from typed parts and never concatenated.

`QemuArgs` has one method per concern (machine, accelerator, SMP topology and
NUMA, kernel, character devices, the 9p root, the scratch disk, QMP), each
appending to one argv list; values that qemu parses as comma-separated options
are escaped with `escape`. `argv()` is what `subprocess` runs and what `--dry-run` prints with
`shlex.join`. The CPU numbering qemu gives for `-smp sockets=S,cores=C,threads=T`
is the one `ktstr.topology.Topology` documents; one socket is one LLC.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ktstr.atomicfile import atomic_write
from ktstr.errors import HostSetupError
from ktstr.settings import TCG_THREADS as TCG_THREADS
from ktstr.settings import settings
from ktstr.topology import Topology, format_cpulist
from ktstr.vm.kernel import cache_root


def escape(value: str | os.PathLike[str]) -> str:
    """Escape a value for a qemu option list, where a comma is written as two."""
    return str(value).replace(",", ",,")


def vcpu_threads(qmp: Callable[..., Any]) -> dict[int, int]:
    """cpu index -> host thread id, from QMP `query-cpus-fast` (`qmp(cmd)` returns the
    command's result)."""
    return {int(c["cpu-index"]): int(c["thread-id"]) for c in qmp("query-cpus-fast")}


#: qboot: a minimal firmware that only knows how to boot a Linux kernel; where qemu's
#: package ships it, it replaces SeaBIOS (measured: 0.1-0.3 s faster to boot with PVH).
QBOOT_ROM = Path("/usr/share/qemu/qboot.rom")


def qboot_rom() -> Path | None:
    return QBOOT_ROM if QBOOT_ROM.is_file() else None


@dataclass(frozen=True, slots=True)
class QemuBinary:
    """A probed qemu-system-x86_64: where it is and which version it is."""

    path: Path
    version: str

    @classmethod
    @cache
    def find(cls) -> QemuBinary:
        found = settings().qemu or shutil.which("qemu-system-x86_64")
        if not found:
            raise HostSetupError("qemu-system-x86_64 is not installed",
                                 "apt-get install qemu-system-x86 (or run `make setup`)")
        return cls(Path(found), _version(str(found)))


def _version(binary: str) -> str:
    """What `binary --version` says, remembered in the cache under the binary's identity
    (real path, size, mtime): running qemu to ask cost 20-40 ms of every `ktstr test`."""
    real = os.path.realpath(binary)
    try:
        st = os.stat(real)
    except OSError:
        return _ask_version(binary)
    key = f"{real} {st.st_size} {st.st_mtime_ns}"
    memo = cache_root() / "qemu-versions.json"
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if isinstance(known.get(key), str):
        return str(known[key])
    version = _ask_version(binary)
    if version != "unknown":
        with contextlib.suppress(OSError):
            memo.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(memo) as f:
                f.write(json.dumps({**known, key: version}))
    return version


def _ask_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"version (\S+)", out.stdout)
    return m.group(1) if m else "unknown"


class QemuArgs:
    """Accumulates one qemu argv, concern by concern."""

    def __init__(self, binary: Path) -> None:
        self._argv: list[str] = [str(binary)]

    def add(self, *args: str) -> QemuArgs:
        self._argv.extend(args)
        return self

    def argv(self) -> list[str]:
        return list(self._argv)

    def base(self) -> QemuArgs:
        """No default devices, no config files, no screen, exit instead of rebooting."""
        return self.add("-nodefaults", "-no-user-config", "-display", "none", "-no-reboot")

    def firmware(self, rom: Path | None) -> QemuArgs:
        """A firmware other than SeaBIOS (qboot boots a PVH kernel faster), if any."""
        return self.add("-bios", str(rom)) if rom is not None else self

    def machine(self, accel: str, tcg_threads: str = "multi") -> QemuArgs:
        """q35 with `accel`. Under TCG, `tcg_threads="multi"` gives each vCPU a host
        thread (vCPUs really run in parallel); "single" runs them all on one (which
        to use: ktstr.vm.accel.choose_tcg_threads)."""
        self.add("-machine", "q35")
        if accel == "kvm":
            return self.add("-accel", "kvm", "-cpu", "host")
        if tcg_threads not in TCG_THREADS:
            raise ValueError(f"tcg_threads={tcg_threads!r}; expected one of {TCG_THREADS}")
        return self.add("-accel", f"tcg,thread={tcg_threads}", "-cpu", "max")

    def topology(self, topo: Topology, memory_mb: int, mem_dir: Path, run_id: str) -> list[Path]:
        """SMP layout plus one shared-file memory backend per NUMA node.

        Returns the backing files: the caller removes them when the VM ends.
        Every node gets an explicit CPU list, so an LLC never straddles nodes.
        A snapshot copies these files itself and leaves them out of qemu's
        migration stream (x-ignore-shared, see ktstr.vm.snapshot).
        """
        self.add("-smp", f"cpus={topo.cpus},sockets={topo.llcs},dies=1,"
                 f"cores={topo.cores},threads={topo.threads}")
        self.add("-m", f"{memory_mb}M")
        files: list[Path] = []
        for node, size in enumerate(split_memory(memory_mb, topo.numa_nodes)):
            path = mem_dir / f"ktstr-{run_id}-node{node}"
            files.append(path)
            self.add("-object", f"memory-backend-file,id=mem{node},size={size}M,"
                     f"mem-path={escape(path)},share=on")
            cpus = format_cpulist(topo.node_cpus(node)).replace(",", ",cpus=")
            self.add("-numa", f"node,nodeid={node},cpus={cpus},memdev=mem{node}")
        return files

    def kernel(self, image: Path, initrd: Path, append: list[str]) -> QemuArgs:
        return self.add("-kernel", str(image), "-initrd", str(initrd), "-append", " ".join(append))

    def console(self, log: Path) -> QemuArgs:
        """ttyS0 into a file: the whole kernel log, kept for failure reports.

        Appended to: a restored guest's log starts with the boot log of the guest
        that was saved (see ktstr.vm.machine)."""
        self.add("-chardev", f"file,id=console,path={escape(log)},append=on")
        return self.add("-serial", "chardev:console")

    def console_stdio(self) -> QemuArgs:
        """ttyS0 on qemu's own stdin/stdout (an interactive shell); Ctrl-C goes to the guest."""
        self.add("-chardev", "stdio,id=console,signal=off")
        return self.add("-serial", "chardev:console")

    def result_port(self, sock: Path, name: str) -> QemuArgs:
        """A virtio-serial port carrying JSON lines; qemu connects to our unix socket."""
        self.add("-device", "virtio-serial-pci,id=vser0")
        self.add("-chardev", f"socket,id=result,path={escape(sock)}")
        return self.add("-device", f"virtserialport,bus=vser0.0,chardev=result,name={name}")

    def host_root(self, tag: str) -> QemuArgs:
        """The host's / read-only over 9p; the guest puts a tmpfs overlay on top."""
        self.add("-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,"
                 "multidevs=remap")
        return self.add("-device", f"virtio-9p-pci,fsdev=hostroot,mount_tag={tag}")

    def scratch_disk(self, image: Path, serial: str, *, direct: bool = True) -> QemuArgs:
        """A raw virtio-blk disk on `image`, which the guest finds by `serial`.

        `cache=none` opens the host file O_DIRECT: a guest write completes when the
        host's device has it, not the host's page cache, so the guest's O_DIRECT and
        O_SYNC I/O wait as they would on real hardware; `aio=native` (Linux AIO) needs
        it. `direct=False` (a host file system refusing O_DIRECT) falls back to the
        host's page cache with qemu's thread pool. The host-side cache mode is not
        part of the guest's state: machines differing only in it restore each other.
        """
        cache = "cache=none,aio=native" if direct else "cache=writeback,aio=threads"
        self.add("-drive", f"if=none,id=scratch,file={escape(image)},format=raw,{cache}")
        return self.add("-device", f"virtio-blk-pci,drive=scratch,serial={escape(serial)}")

    def gdbstub(self, sock: Path) -> QemuArgs:
        """qemu's gdbstub on a socket it connects to (we listen, as for QMP).

        qemu attaches the stub when the chardev opens, which here happens before the
        guest runs, so nothing is stopped at start; a `-gdb unix:...,server=on` socket
        would instead stop the running guest at the moment a client attaches.
        """
        self.add("-chardev", f"socket,id=gdb,path={escape(sock)}")
        return self.add("-gdb", "chardev:gdb")

    def qmp(self, sock: Path) -> QemuArgs:
        """QMP on a monitor that connects to our unix socket (we listen: no polling)."""
        self.add("-chardev", f"socket,id=qmp,path={escape(sock)}")
        return self.add("-mon", "chardev=qmp,mode=control")


def split_memory(memory_mb: int, nodes: int) -> list[int]:
    """Split guest memory over NUMA nodes in whole MiB; node 0 takes the remainder."""
    base = memory_mb // nodes
    sizes = [base] * nodes
    sizes[0] += memory_mb - base * nodes
    return sizes
