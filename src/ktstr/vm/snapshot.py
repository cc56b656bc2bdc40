"""Saved guests: boot once per VM configuration, restore it for every run.

A cold boot under TCG spends seconds in firmware, kernel init and Python's
start-up before the agent can take a test; restoring a guest saved at that
moment (its agent waiting for orders) skips all of it. A snapshot is two things:
the guest's RAM, copied from its shared memory files (one per NUMA node)
with the zero pages left out, and qemu's migration stream of everything else
(QMP `stop` + `migrate exec:cat > FILE` with `x-ignore-shared`, so RAM is not
in it). A restore copies the RAM into the new VM's memory files and starts
the identical qemu with `-incoming`. Loading RAM through the stream instead
costs seconds: qemu reads every page of a fresh shared file to see whether it
is zero, which allocates all of guest memory. Both ends learn that the stream is
done from qemu's MIGRATION events (the `events` capability), not by polling.

"Identical" is the key: everything that decides what the guest is (the qemu
command line with the run's own paths left out, the qemu version, the kernel
image, the initramfs, which is named by the hash of the agent's code) is
hashed into the snapshot's directory name, so a change to any of it simply
names another snapshot. The directory appears whole (written under a
temporary name, then renamed) and is never modified afterwards, so parallel
runs read it without a lock; only its creation is serialised, and a run that
finds another one saving just boots cold. A snapshot that fails to restore is
removed (see ktstr.runner.boot) and the next cold boot saves it anew.

What a restored guest must not share with its siblings (the clock, the RNG
state, the host root mount that qemu cannot migrate) is set by the agent when
its orders arrive (ktstr.guest.agent.take_orders).

Not to be confused with ktstr.scenario.snapshot.Snapshot, a capture of the
scheduler's state during a test: a saved guest here is a `SavedGuest`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ktstr.vm.kernel import TEMP_PREFIX, cache_root, exclusive_lock, remove_tree

log = logging.getLogger(__name__)

#: Bump when the guest's state at hello changes in a way the key cannot see.
FORMAT = 1
STATE = "state"
META = "meta.json"
RAM = "ram-node{}"
CONSOLE = "console.log"  # the kernel log up to the save: a restored run's log starts with it

#: qemu throttles migration to 128 MiB/s by default; a save to a local file need not be.
SAVE_BANDWIDTH = 1 << 40
#: Each snapshot is ~200 MB and any change to the agent's code names a new one: keep the
#: most recently used few (a test suite uses one per topology and memory size).
KEEP = 16
SAVE_TIMEOUT_S = 120.0


def snapshots_root() -> Path:
    return cache_root() / "snapshots"


def snapshot_key(identity: list[str], qemu_version: str, files: list[Path]) -> str:
    """The hash naming a snapshot: the qemu command line without the run's own paths,
    qemu's version, and the identity (size, mtime) of the files qemu loads."""
    h = hashlib.sha256(json.dumps([FORMAT, qemu_version, identity]).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class SavedGuest:
    """One saved guest, present or not: `<snapshots_root>/<key>/{state,meta.json}`."""

    key: str
    root: Path

    @property
    def dir(self) -> Path:
        return self.root / self.key

    @property
    def state(self) -> Path:
        return self.dir / STATE

    def exists(self) -> bool:
        return self.state.is_file() and (self.dir / META).is_file()

    @property
    def console(self) -> Path:
        return self.dir / CONSOLE

    def ram_files(self) -> list[Path]:
        """The saved RAM of each NUMA node, in node order."""
        return [self.dir / RAM.format(i) for i in range(int(self.meta().get("ram_files", 0)))]

    def meta(self) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads((self.dir / META).read_text())
        except (OSError, ValueError):
            return {}
        return meta

    def incoming_uri(self) -> str:
        """What `-incoming` takes to load this snapshot."""
        return f"exec:cat {shlex.quote(str(self.state))}"

    def touch(self) -> None:
        """Mark it used now: pruning removes the least recently used first."""
        with contextlib.suppress(OSError):
            os.utime(self.dir / META)

    def last_used(self) -> float:
        try:
            return (self.dir / META).stat().st_mtime
        except OSError:
            return 0.0

    def discard(self, why: str) -> None:
        """Remove this snapshot (a restore failed); the next cold boot saves it anew."""
        log.warning("discarding snapshot %s: %s", self.key, why)
        self.remove()

    def remove(self) -> None:
        """Remove it at once (a rename), even while a restore is reading it."""
        try:
            remove_tree(self.dir)
        except OSError as e:  # another run removed it first
            log.debug("snapshot %s already gone: %s", self.key, e)


class SavableVm(Protocol):
    """What saving needs of a running VM (ktstr.vm.machine.Machine provides it)."""

    memory_fds: list[int]  # the guest's RAM, one shared file per NUMA node
    console_log: Path

    def qmp(self, cmd: str, **args: Any) -> Any: ...

    def clear_qmp_events(self) -> None: ...

    def qmp_event(self, name: str, timeout: float) -> dict[str, Any] | None: ...


def save(vm: SavableVm, snap: SavedGuest, meta: dict[str, Any]) -> float | None:
    """Save the paused-at-hello guest `vm` as `snap`, leave it running again.

    Returns the seconds the guest stood still, or None when nothing was saved
    (another run is saving the same snapshot, it exists already, or qemu failed,
    which is logged: a run never fails for want of a snapshot).
    """
    snap.root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(snap.root / f"{snap.key}.lock", f"snapshot {snap.key}",
                        wait=False) as held:
        if not held or snap.exists():
            return None
        tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=snap.root))
        started = time.monotonic()
        vm.qmp("stop")
        try:
            status = _migrate(vm, tmp / STATE)
            if status != "completed":
                log.warning("could not save snapshot %s: migration %s", snap.key, status)
                return None
            shutil.copyfile(vm.console_log, tmp / CONSOLE)
            size = (tmp / STATE).stat().st_size
            for node, fd in enumerate(vm.memory_fds):
                with open(tmp / RAM.format(node), "wb") as out:
                    size += copy_nonzero(fd, out.fileno())
            meta = {**meta, "key": snap.key, "created": time.time(), "size": size,
                    "ram_files": len(vm.memory_fds)}
            (tmp / META).write_text(json.dumps(meta, indent=1))
            try:
                os.rename(tmp, snap.dir)
            except OSError as e:  # saved meanwhile by a run that did not see our lock
                log.info("snapshot %s appeared while saving it: %s", snap.key, e)
                return None
            saved = time.monotonic() - started
        finally:
            vm.qmp("cont")
            shutil.rmtree(tmp, ignore_errors=True)
    prune_snapshots(KEEP, snap.root)
    return saved


#: RAM lives in shared files that a snapshot copies itself: keep it out of the stream;
#: and have qemu send a MIGRATION event at each change of the migration's status. Only
#: x-ignore-shared must match on both ends (qemu checks it on load).
CAPABILITIES = [{"capability": "x-ignore-shared", "state": True},
                {"capability": "events", "state": True}]
#: The statuses that end a migration, either way.
MIGRATION_ENDS = ("completed", "failed", "cancelled")


def migration_end(vm: SavableVm, timeout: float) -> str | None:
    """The status that ended the migration under way, from its MIGRATION events; None
    when it did not end within `timeout` seconds (or qemu went away)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        event = vm.qmp_event("MIGRATION", left)
        if event is None:
            return None
        status = str(event.get("data", {}).get("status", ""))
        if status in MIGRATION_ENDS:
            return status
    return None


def _migrate(vm: SavableVm, dest: Path) -> str:
    vm.qmp("migrate-set-capabilities", capabilities=CAPABILITIES)
    vm.qmp("migrate-set-parameters", **{"max-bandwidth": SAVE_BANDWIDTH})
    vm.clear_qmp_events()
    vm.qmp("migrate", uri=f"exec:cat > {shlex.quote(str(dest))}")
    status = migration_end(vm, SAVE_TIMEOUT_S)
    if status is None:
        vm.qmp("migrate_cancel")
        return f"not done within {SAVE_TIMEOUT_S:.0f}s"
    if status == "failed":
        info = vm.qmp("query-migrate")
        reason = info.get("error-desc") if isinstance(info, dict) else None
        status += f" ({reason or 'no reason given'})"
    return status


#: Zero runs are found at this granularity (a multiple of the guest's 4 KiB pages).
_BLOCK = 64 * 1024
_ZERO = bytes(_BLOCK)


def copy_nonzero(src: int, dst: int) -> int:
    """Make file `dst` as long as `src`, holding `src`'s non-zero blocks at their offsets
    (the rest stays holes, which read as zeros); returns the bytes written.

    Only the data extents of `src` are read (SEEK_DATA/SEEK_HOLE), so a mostly
    untouched guest memory file costs what the guest actually used.
    """
    os.ftruncate(dst, os.fstat(src).st_size)
    written = 0
    for start, end in data_extents(src):
        for off in range(start, end, 16 * _BLOCK):
            chunk = os.pread(src, min(16 * _BLOCK, end - off), off)
            for i in range(0, len(chunk), _BLOCK):
                block = chunk[i:i + _BLOCK]
                if block != _ZERO[:len(block)]:
                    written += os.pwrite(dst, block, off + i)
    return written


def copy_data(src: int, dst: int) -> int:
    """Make file `dst` as long as `src`, holding `src`'s data extents at their offsets
    (its holes stay holes); returns the bytes copied.

    For a file `copy_nonzero` wrote (a saved guest's RAM), whose extents hold no
    zero blocks worth leaving out: the kernel copies them (sendfile), without
    the two copies through this process that reading and writing would cost
    (0.08 s instead of 0.12 s for 200 MB here).
    """
    os.ftruncate(dst, os.fstat(src).st_size)
    copied = 0
    for start, end in data_extents(src):
        os.lseek(dst, start, os.SEEK_SET)  # sendfile writes at dst's file position
        off = start
        while off < end:
            sent = os.sendfile(dst, src, off, end - off)
            if sent == 0:  # src shrank under us
                raise OSError(errno.EIO, f"short copy at offset {off}")
            off += sent
            copied += sent
    return copied


def data_extents(fd: int) -> Iterator[tuple[int, int]]:
    """The (start, end) offsets of each data extent of file `fd` (SEEK_DATA/SEEK_HOLE)."""
    size = os.fstat(fd).st_size
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # no data after pos
                return
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        pos = end


def list_snapshots(root: Path | None = None) -> list[SavedGuest]:
    root = root or snapshots_root()
    if not root.is_dir():
        return []
    found = (SavedGuest(d.name, root) for d in sorted(root.iterdir())
             if d.is_dir() and not d.name.startswith("."))
    return [s for s in found if s.exists()]


def prune_snapshots(keep: int, root: Path | None = None) -> list[str]:
    """Remove all but the `keep` most recently used snapshots."""
    stale = sorted(list_snapshots(root), key=SavedGuest.last_used, reverse=True)[keep:]
    for snap in stale:
        log.info("removing snapshot %s: the least recently used of more than %d", snap.key,
                 keep)
        snap.remove()
    return [s.key for s in stale]


def clean_snapshots(keys: list[str] | None = None, root: Path | None = None) -> list[str]:
    """Remove the snapshots named by `keys` (prefixes allowed), or all of them."""
    removed = []
    for snap in list_snapshots(root):
        if keys is None or any(snap.key.startswith(k) for k in keys):
            snap.remove()
            removed.append(snap.key)
    return removed
