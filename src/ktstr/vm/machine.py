"""One qemu VM as a context manager: launch, talk to the guest agent, always clean up.

Modelled on QEMU's own python/qemu/machine: the constructor starts nothing;
`launch()` opens the listening sockets first (QMP and the result port are
served by us, qemu connects to them, so readiness is an event, not a poll),
then starts qemu with a parent-death signal so no VM outlives its parent. The
shutdown is a ladder: wait for the guest's own power-off, then QMP `quit`,
SIGTERM, SIGKILL, each with a timeout. The console log, the guest-RAM files
on /dev/shm and the scratch disk's image are handled however the run ended.

qemu runs in a process group of its own (with the helpers it starts, such as
the `cat` of a snapshot's migration stream): a terminal's Ctrl-C or a CI
system's SIGTERM to the run's group reaches the harness only, which stops its
VMs in order (ktstr.runner.signals). The one exception is a console on this
terminal (`ktstr shell`): qemu reads the terminal, so it stays in the
terminal's foreground group. A qemu that ends without being asked to, killed
by a signal or told to quit by one from another process, says so
(`stopped_from_outside`): the run is reported as exactly that, never as a
broken guest or snapshot.

The scratch disk (`VmSpec.disk_mb`, see ktstr.system.blockdev for the guest's
side) is a sparse raw file in the run's work directory, created empty for
every machine, a restored one included: a snapshot is saved before the guest
ever writes to it, so a fresh file of zeros is exactly the disk it saw.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from qemu.qmp.legacy import QEMUMonitorProtocol

from ktstr.errors import VmLaunchError
from ktstr.protocol import PORT_NAME, ROOT_TAG, decode, encode
from ktstr.system.blockdev import SCRATCH_SERIAL
from ktstr.system.libc import set_pdeathsig
from ktstr.topology import Topology
from ktstr.vm.gdbstub import GdbStub
from ktstr.vm.hostkaslr import write_relocated
from ktstr.vm.perfmode import PinnedThreads, Pinning, apply_pinning
from ktstr.vm.qemu import QemuArgs, QemuBinary
from ktstr.vm.snapshot import CAPABILITIES, SavedGuest, copy_data, migration_end

log = logging.getLogger(__name__)



#: The scratch disk's default size: 64 regions of 4 MiB (ktstr.system.blockdev). Sparse:
#: the host stores only what the guest writes.
SCRATCH_DISK_MB = 256

#: What qemu writes to stderr when a signal (SIGINT, SIGTERM, SIGHUP) makes it quit:
#: "terminating on signal 2 from pid 4242 (bash)" (the sender when the kernel says).
_QEMU_SIGNALLED = re.compile(r"terminating on signal (\d+)(?: from pid (\d+)(?: \((.*?)\))?)?")
#: How long a qemu whose guest went away is given to exit before it is asked whether
#: something outside stopped it (a signalled qemu closes its ports, then exits).
OUTSIDE_EXIT_WAIT_S = 2.0


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to `timeout` seconds for `proc` to exit; whether it did (then reaped).

    The exit is seen the moment it happens, through a pidfd; `Popen.wait(timeout)`
    polls with sleeps of up to 50 ms, which every run's shutdown would pay.
    """
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # a kernel without pidfds (before 5.3): Popen's polling
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        return proc.poll() is not None
    try:
        select.select([pidfd], [], [], timeout)  # readable once the process has exited
    finally:
        os.close(pidfd)
    return proc.poll() is not None


def _die_with_parent() -> None:
    set_pdeathsig(signal.SIGKILL)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass(frozen=True, slots=True)
class VmSpec:
    """Everything that decides what boots."""

    image: Path
    initrd: Path
    topology: Topology
    memory_mb: int
    accel: str
    append: tuple[str, ...] = ()
    tcg_threads: str = "multi"  # ktstr.vm.accel.choose_tcg_threads
    firmware: Path | None = None  # -bios ROM; None: qemu's default (SeaBIOS)
    console_stdio: bool = False  # ttyS0 on this process's terminal (`ktstr shell`)
    mem_dir: Path = Path("/dev/shm")
    disk_mb: int = SCRATCH_DISK_MB  # the scratch disk's size; 0: no disk
    extra_args: tuple[str, ...] = field(default=())
    # Performance mode's pinning of the vCPU threads, done as soon as qemu is up; not
    # on qemu's command line, so not part of what the guest is (machine_identity).
    pinning: Pinning | None = None
    # `image` is a vmlinux with its relocation table that each cold boot relocates to a
    # random virtual offset (ktstr.vm.hostkaslr); the identity keeps the source's path.
    host_kaslr: bool = False


#: Accounting switched on at boot rather than by a sysctl during a test: turning it on
#: flips static keys, i.e. patches kernel text with int3 breakpoints, and under
#: multi-threaded TCG another vCPU can run the half-patched code (seen: "Oops: int3" in
#: sched_balance_rq while a test set kernel.sched_schedstats=1). Writing the sysctls
#: later is then a no-op. Schedstats feed /proc/<pid>/sched's wait/block/sleep times,
#: delay accounting the blkio ticks the I/O work types are judged by.
STATIC_KEYS_ON = ("schedstats=enable", "delayacct")


def qemu_args(spec: VmSpec, sock_dir: Path, run_id: str, console_log: Path,
              scratch: Path, scratch_direct: bool = True) -> tuple[QemuArgs, list[Path]]:
    """The command line booting `spec` with its scratch disk image at `scratch` (when
    `spec.disk_mb`), and the guest-RAM files it names."""
    q = QemuArgs(QemuBinary.find().path).base().firmware(spec.firmware)
    q.machine(spec.accel, spec.tcg_threads)
    mem_files = q.topology(spec.topology, spec.memory_mb, spec.mem_dir, run_id)
    q.kernel(spec.image, spec.initrd, ["console=ttyS0", "panic=-1", "oops=panic",
                                       *STATIC_KEYS_ON, *spec.append])
    if spec.console_stdio:
        q.console_stdio()
    else:
        q.console(console_log)
    q.result_port(sock_dir / "result", PORT_NAME)
    q.host_root(ROOT_TAG)
    if spec.disk_mb > 0:
        q.scratch_disk(scratch, SCRATCH_SERIAL, direct=scratch_direct)
    q.qmp(sock_dir / "qmp")
    q.add(*spec.extra_args)
    return q, mem_files


def machine_identity(spec: VmSpec) -> list[str]:
    """`spec`'s command line with a run's own paths replaced by fixed ones: machines of
    equal identity can restore each other's snapshots (ktstr.vm.snapshot). The scratch
    disk's size is the image's, not an option: its fixed name carries it."""
    scratch = Path(f"/scratch-{spec.disk_mb}M.img")
    return qemu_args(spec, Path("/run"), "run", Path("/console"), scratch)[0].argv()


def create_scratch_image(path: Path, size_mb: int) -> bool:
    """A new sparse raw image of `size_mb` MiB at `path`; returns whether its file
    system takes O_DIRECT (what qemu's `cache=none` opens it with)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size_mb << 20)
    finally:
        os.close(fd)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC))
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        log.warning("%s refuses O_DIRECT: the scratch disk goes through the host's page "
                    "cache (cache=writeback)", path.parent)
        return False
    return True


class Machine:
    def __init__(self, spec: VmSpec, workdir: Path, *, restore: SavedGuest | None = None) -> None:
        """`restore`: a saved guest to start from instead of booting; the machine
        then stays paused until `wait_restored`."""
        self.spec = spec
        self.workdir = workdir
        self.restore = restore
        self.run_id = uuid.uuid4().hex[:12]
        self.console_log = workdir / "console.log"
        self.qemu_log = workdir / "qemu.log"
        self.scratch_image = workdir / f"scratch-{self.run_id}.img"
        self._scratch_direct = True
        # Unix socket paths are limited to 108 bytes; a run directory may be deeper.
        self._sock_dir = Path(tempfile.mkdtemp(prefix=f"ktstr-{self.run_id}-"))
        self._qmp_path = self._sock_dir / "qmp"  # the names _args gives them
        self._port_path = self._sock_dir / "result"
        self._gdb_path = self._sock_dir / "gdb"
        self._proc: subprocess.Popen[bytes] | None = None
        self._qmp: QEMUMonitorProtocol | None = None
        self._port_listener: socket.socket | None = None
        self._port: socket.socket | None = None
        self._gdb_listener: socket.socket | None = None
        self._gdb_sock: socket.socket | None = None
        self._gdbstub: GdbStub | None = None
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._unread: list[dict[str, Any]] = []
        self._mem_files: list[Path] = []
        self.memory_fds: list[int] = []  # one per NUMA node, guest-physical order
        self._argv: list[str] = []
        self.exit_code: int | None = None
        self._stopping = False  # this harness asked qemu to stop (QMP quit or a signal)
        self.pinned: PinnedThreads | None = None  # what spec.pinning did, once launched
        self.kaslr_offset: int | None = None  # chosen by the host (spec.host_kaslr)
        self._relocated_image: Path | None = None

    # -- command line -------------------------------------------------------

    def argv(self) -> list[str]:
        spec = self.spec
        if spec.host_kaslr and self.restore is None:
            # A restore's RAM comes from the snapshot: any image does for its -kernel.
            relocated = spec.mem_dir / f"ktstr-vmlinux-{self.run_id}"
            self._relocated_image = relocated
            self.kaslr_offset = write_relocated(spec.image, relocated)
            log.info("kernel relocated by the host to KASLR offset %#x", self.kaslr_offset)
            spec = replace(spec, image=relocated)
        q, self._mem_files = qemu_args(spec, self._sock_dir, self.run_id, self.console_log,
                                       self.scratch_image, self._scratch_direct)
        # Outside qemu_args: the stub is a host-side tool, not part of what the guest
        # is, so adding it leaves machine_identity (and every saved snapshot) as it was.
        q.gdbstub(self._gdb_path)
        if self.restore is not None:
            q.add("-incoming", "defer")  # started by wait_restored, once QMP is up
        return q.argv()

    # -- lifecycle ----------------------------------------------------------

    def launch(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.spec.disk_mb > 0:
            try:
                self._scratch_direct = create_scratch_image(self.scratch_image,
                                                            self.spec.disk_mb)
            except OSError as e:
                self._cleanup()
                raise VmLaunchError(f"cannot create the scratch disk image "
                                    f"{self.scratch_image}: {e}; hint: free space in "
                                    f"{self.workdir} or give the VM disk_mb=0") from e
        self._argv = self.argv()
        self.console_log.write_bytes(b"")  # qemu appends (see QemuArgs.console)
        if self.restore is not None:
            try:
                self._load_snapshot(self.restore)
            except (OSError, ValueError) as e:
                self._cleanup()
                raise VmLaunchError(f"cannot load snapshot {self.restore.key}: {e}",
                                    self._argv) from e
        try:
            self._qmp = QEMUMonitorProtocol(str(self._qmp_path), server=True)
            self._port_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._port_listener.bind(str(self._port_path))
            self._port_listener.listen(1)
            self._gdb_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._gdb_listener.bind(str(self._gdb_path))
            self._gdb_listener.listen(1)
        except Exception as e:
            self._cleanup()
            raise VmLaunchError(f"cannot open the VM's control sockets in {self._sock_dir}: "
                                f"{e}", self._argv) from e
        with open(self.qemu_log, "wb") as err:
            # With the console on stdio qemu needs this terminal; otherwise nothing.
            tty = self.spec.console_stdio
            self._proc = subprocess.Popen(self._argv, stdin=None if tty else subprocess.DEVNULL,
                                          stdout=None if tty else err, stderr=err,
                                          process_group=None if tty else 0,
                                          preexec_fn=_die_with_parent)
        log.debug("launched qemu pid %d: %s", self._proc.pid, " ".join(self._argv))
        try:
            try:
                self._accept_port(timeout=30.0)
                self._gdb_sock = self._accept(self._gdb_listener, timeout=30.0)
                self._qmp.accept(timeout=30.0)
            except Exception as e:
                raise VmLaunchError(f"qemu did not start: {e}; qemu said: {self._qemu_said()}",
                                    self._argv, self._proc.poll(), self.console_tail()) from e
            self._detach_names()
            self._pin()
        except BaseException:
            self.kill()  # __exit__ does not run when __enter__ raises
            raise
        threading.Thread(target=self._read_port, name=f"ktstr-port-{self.run_id}",
                         daemon=True).start()

    def _pin(self) -> None:
        """Performance mode: pin the vCPU threads (and make them SCHED_FIFO) as
        `spec.pinning` says, before the guest has run for long (a restored one not at
        all: it waits for `wait_restored`). A thread that cannot be pinned raises
        SysIoError, not VmLaunchError: the host refused, and a restore failing that way
        says nothing against its snapshot (ktstr.runner.boot discards a snapshot whose
        launch fails)."""
        if self.spec.pinning is not None:
            self.pinned = apply_pinning(self.qmp, self.spec.pinning)

    def _load_snapshot(self, snap: SavedGuest) -> None:
        """Give qemu memory files that already hold the saved guest's RAM, and start
        the console log with the saved guest's boot log (qemu appends to it)."""
        with open(self.console_log, "wb") as log_out:
            with open(snap.console, "rb") as boot_log:
                shutil.copyfileobj(boot_log, log_out)
            log_out.write(f"---- ktstr: restored from snapshot {snap.key}; the boot log above "
                          "is the saved guest's ----\n".encode())
        saved = snap.ram_files()
        if len(saved) != len(self._mem_files):
            raise ValueError(f"it has RAM for {len(saved)} NUMA nodes, the VM "
                             f"{len(self._mem_files)}")
        for src, dst in zip(saved, self._mem_files, strict=True):
            with open(src, "rb") as fin, open(dst, "xb") as fout:
                copy_data(fin.fileno(), fout.fileno())

    def _detach_names(self) -> None:
        """Remove every name on the host file system that this VM created.

        qemu has connected its sockets and mapped guest RAM, so the names are no
        longer needed; without them nothing is left behind even if this process
        is SIGKILLed. Guest RAM stays reachable through `memory_fds`. The scratch
        disk's image keeps its name until `_cleanup`: qemu reopens it by name when
        a snapshot save deactivates the disk (with the name gone the save fails in
        `bdrv_inactivate_all`).
        """
        for path in self._mem_files:
            self.memory_fds.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
            path.unlink()
        self._mem_files = []
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def _accept_port(self, timeout: float) -> None:
        """Wait for qemu to connect the result port, noticing at once if qemu died instead."""
        assert self._port_listener is not None
        self._port = self._accept(self._port_listener, timeout)

    def _accept(self, listener: socket.socket | None, timeout: float) -> socket.socket:
        assert listener is not None and self._proc is not None
        listener.settimeout(0.2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn, _ = listener.accept()
                break
            except TimeoutError:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"qemu exited with code {self._proc.returncode}") from None
                if time.monotonic() > deadline:
                    raise
        conn.settimeout(None)
        return conn

    def _read_port(self) -> None:
        assert self._port is not None
        buf = b""
        try:
            while chunk := self._port.recv(65536):
                buf += chunk
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    try:
                        self._inbox.put(decode(line))
                    except ValueError:
                        log.warning("garbage on the result port: %r", line[:200])
        except OSError:
            pass
        self._inbox.put(None)

    def recv(self, timeout: float) -> dict[str, Any] | None:
        """The next message from the guest; {"type": "eof"} once the port closed or qemu exited.

        Returns None when `timeout` seconds pass without one.
        """
        if self._unread:
            return self._unread.pop()
        try:
            msg = self._inbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if msg is None:
            self._inbox.put(None)  # stay at EOF for later callers
            return {"type": "eof"}
        return msg

    def unread(self, msg: dict[str, Any]) -> None:
        """Put `msg` back: the next `recv` returns it (a caller that peeked at it)."""
        self._unread.append(msg)

    def wait_restored(self, timeout: float) -> None:
        """Wait until qemu has loaded the `incoming` guest, then let it run.

        qemu restores a guest saved while stopped as paused, and sends the MIGRATION
        event `completed` once it is (after setting that run state); a stream it
        cannot load (corrupt, from another qemu) makes it exit, which raises here.
        """
        assert self.restore is not None
        try:  # any QMP command fails once qemu is gone
            self.qmp("migrate-set-capabilities", capabilities=CAPABILITIES)
            self.clear_qmp_events()
            self.qmp("migrate-incoming", uri=self.restore.incoming_uri())
            ended = migration_end(self, timeout)
            status = self.qmp("query-status").get("status")
        except Exception as e:
            raise VmLaunchError(f"qemu died while restoring: {self._qemu_said()}",
                                self._argv, self._proc.poll() if self._proc else None) from e
        if status == "paused" and ended != "failed":
            self.qmp("cont")
            return
        what = f"migration {ended}" if ended else f"qemu status {status!r} after {timeout:.0f}s"
        raise VmLaunchError(f"restore did not complete ({what}): {self._qemu_said()}",
                            self._argv, self._proc.poll() if self._proc else None)

    def send(self, msg: dict[str, Any]) -> None:
        assert self._port is not None
        self._port.sendall(encode(msg))

    def qmp(self, cmd: str, **args: Any) -> Any:
        assert self._qmp is not None
        return self._qmp.cmd(cmd, **args)

    def clear_qmp_events(self) -> None:
        """Forget the QMP events received so far: `qmp_event` waits for newer ones."""
        assert self._qmp is not None
        self._qmp.clear_events()

    def qmp_event(self, name: str, timeout: float) -> dict[str, Any] | None:
        """The next QMP event called `name` (others are dropped), or None when none came
        within `timeout` seconds or qemu exited first (looked at once a second: an exited
        qemu sends nothing more)."""
        assert self._qmp is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._qmp.pull_event(wait=float(min(left, 1.0)))
            except TimeoutError:
                if not self.running():
                    return None
                continue
            if event is not None and event.get("event") == name:
                return event
        return None

    def gdbstub(self) -> GdbStub:
        """The client of this VM's gdbstub (one per machine, made on first use).

        qemu connected the stub's socket at launch, so no name on the host is needed
        and attaching does not stop the guest."""
        if self._gdbstub is None:
            if self._gdb_sock is None:
                raise VmLaunchError("this VM has no gdbstub connection (not launched, or "
                                    "already shut down)", self._argv)
            self._gdbstub = GdbStub(self._gdb_sock, name=f"ktstr-gdb-{self.run_id}")
        return self._gdbstub

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def shutdown(self, grace: float = 10.0) -> int | None:
        """Wait `grace` seconds for the guest's power-off (0: a guest that said bye), then
        escalate: QMP quit, SIGTERM, SIGKILL."""
        proc = self._proc
        try:
            if proc is not None and not wait_exit(proc, grace):
                self._stopping = True
                with contextlib.suppress(Exception):
                    self.qmp("quit")
                if not wait_exit(proc, 3.0):
                    self._kill()
            if proc is not None:
                self.exit_code = proc.poll()
        finally:
            self._cleanup()
        return self.exit_code

    def stopped_from_outside(self, wait: float = OUTSIDE_EXIT_WAIT_S) -> str | None:
        """Why qemu ended when this harness did not stop it: killed by a signal, or made
        to quit by one another process sent; None while it runs (given `wait` seconds to
        exit), after this harness stopped it, and when it exited on its own (the guest
        powered off, or rebooted after a panic: the guest's doing, not an outsider's)."""
        proc = self._proc
        if proc is None or self._stopping:
            return None
        if not wait_exit(proc, wait):
            return None
        code = proc.returncode
        if code < 0:
            return f"qemu was killed by {_signal_name(-code)}, not by ktstr"
        said = _QEMU_SIGNALLED.search(self._qemu_said())
        if said is None or said.group(2) == str(os.getpid()):
            return None
        sender = (f" from pid {said.group(2)}" + (f" ({said.group(3)})" if said.group(3) else "")
                  if said.group(2) else "")
        return (f"qemu was stopped by {_signal_name(int(said.group(1)))}{sender}, not by "
                f"ktstr (it exited with status {code})")

    def kill(self) -> None:
        """Stop the VM now (host-side timeout, Ctrl-C)."""
        self._kill()
        self._cleanup()

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is not None:
            self.exit_code = proc.returncode
            return
        self._stopping = True
        proc.terminate()
        if not wait_exit(proc, 3.0):
            proc.kill()
            proc.wait()
        self.exit_code = proc.returncode

    def _cleanup(self) -> None:
        if self._gdbstub is not None:
            self._gdbstub.abandon()
        for closer in (self._qmp, self._port, self._port_listener, self._gdb_sock,
                       self._gdb_listener):
            with contextlib.suppress(Exception):
                if closer is not None:
                    closer.close()
        self._qmp = None
        for path in [*self._mem_files, self.scratch_image, *filter(None, [self._relocated_image])]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for fd in self.memory_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.memory_fds = []
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def __enter__(self) -> Machine:
        self.launch()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.kill()
        else:
            self.shutdown()

    # -- evidence -----------------------------------------------------------

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_tail(self, lines: int = 40) -> str:
        return "\n".join(self.console_text().rstrip().splitlines()[-lines:])

    def _qemu_said(self) -> str:
        try:
            return self.qemu_log.read_text(errors="replace").strip()[-2000:] or "(nothing)"
        except OSError:
            return "(no log)"
