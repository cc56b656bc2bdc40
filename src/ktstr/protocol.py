"""What the host and the guest agent say to each other on the result port.

One JSON object per line on a virtio-serial port (never the console, which
stays the whole kernel log). The guest speaks first:

    guest -> host  {"type": "hello", "uname": ..., "uptime_s": ...}
    host  -> guest {"type": "go", "test": {...TestRequest...}}
                   or {"type": "go", "shell": {...ShellRequest...}} (`ktstr shell`)
    guest -> host  {"type": "log", "msg": ...}            (any number)
    guest -> host  {"type": "topology", "ok": bool, "seen": {...}, "problems": [...]}
    guest -> host  {"type": "request", "id": n, "op": ..., ...}  (any number, while the
                   body runs; the guest blocks until the host answers that id)
    host  -> guest {"type": "reply", "id": n, "ok": true, ...}
                   or {"type": "reply", "id": n, "ok": false, "error": "..."} (raised in
                   the guest as KtstrError with the host's message)
    guest -> host  {"type": "result", "outcome": ..., ..., "scheduler": {...SchedulerRun...},
                    "scheduler_runs": [...]}
    guest -> host  {"type": "bye"}                        (then it powers off; the host
                                                          may quit qemu first)

Requests (`GuestPort.request`; served on the host by ktstr.monitor.session):

    "snapshot"       {"name"}: freeze the guest, capture, resume; reply {"name",
                     "frozen_ms", "hits", "missing"}
    "get_snapshot"   {"name"}: reply {"capture": {...} | None, "names": [...]}, the latest
                     capture under name with "hits" (None: none under that name)
    "list_snapshots" {}: reply {"names": [...]}
    "watch"          {"symbol"}: capture whenever the guest kernel writes it; reply
                     {"symbol", "slot", "address"}
    "write_vars"     {"vars": {global: value}}: write the attached scheduler's globals
                     while the guest stands still; reply {"values": {global: read back}}

The guest takes the test from its own import of the test's module: its
topology, schedulers, `scheduler_vars` and duration are the `KtstrTest`'s. The
"go" message carries only what the host decided for this run: the accelerator,
the seed, the wall clock, where the test is, the binary found for each
scheduler, the attach timeout, and what the run overrides of the declared test.

A result is sent once; a host that sees the port close without one knows the
guest died and reports the console tail instead.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

PORT_NAME = "ktstr.result"
#: The 9p mount tag of the host root (QemuArgs.host_root; mounted by the guest agent).
ROOT_TAG = "hostroot"
#: Files in the initramfs by which /init's background module loading tells the agent
#: it is done, or why it failed (ktstr.vm.initramfs, ktstr.guest.init.wait_for_modules).
MODULES_LOADED = "/modules/loaded"
MODULES_FAILED = "/modules/failed"


class Outcome(enum.StrEnum):
    """How a run ended. The guest reports the first four; the host adds the last three."""

    PASSED = "passed"
    FAILED = "failed"  # a check failed, or the body raised
    ERROR = "error"  # the harness itself could not run the body (e.g. topology mismatch)
    INCONCLUSIVE = "inconclusive"
    TIMEOUT = "timeout"  # the host's deadline came before the result
    CRASHED = "crashed"  # the guest died without a result
    # A signal stopped the run: SIGINT or SIGTERM to the harness, or one that killed
    # its qemu from outside ktstr; the error names the signal (ktstr.runner.signals).
    INTERRUPTED = "interrupted"


class SchedEnd(enum.StrEnum):
    """How a scheduler of the run ended (the kernel's word, see ktstr.guest.schedctl)."""

    RUNNING = ""  # not ended (yet)
    CLEAN = "clean"
    ERROR = "error exit"
    STALL = "watchdog stall"
    DETACHED = "detached on its own"
    CRASH = "crash"
    NEVER = "never attached"


@dataclass(frozen=True, slots=True)
class SchedulerOrder:
    """How the guest starts one scheduler: built on each side by
    ktstr.guest.schedorder.scheduler_order from the test's `Scheduler`."""

    name: str
    argv: list[str] = field(default_factory=list)  # empty for a kernel built-in
    enable: list[str] = field(default_factory=list)  # shell commands (kernel built-in)
    disable: list[str] = field(default_factory=list)
    sysctls: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)  # (guest path, content)
    attach_timeout_s: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SchedulerOrder:
        return cls(name=str(d["name"]), argv=list(d.get("argv", [])),
                   enable=list(d.get("enable", [])), disable=list(d.get("disable", [])),
                   sysctls=[(str(k), str(v)) for k, v in d.get("sysctls", [])],
                   files=[(str(p), str(c)) for p, c in d.get("files", [])],
                   attach_timeout_s=float(d.get("attach_timeout_s", 30.0)))


@dataclass
class SchedulerRun:
    """What the host is told about a scheduler of the run: who it was and how it ended.
    Filled in the guest as the scheduler runs; the host adds `watchdog`."""

    name: str
    argv: list[str]
    pid: int = 0
    ops: str = ""
    attach_s: float = 0.0
    end: SchedEnd = SchedEnd.RUNNING
    reason: str = ""  # the kernel's exit reason
    message: str = ""  # the exit message (scx_bpf_error's text, the stall report)
    exit_code: int | None = None
    output_tail: str = ""
    kernel_log: list[str] = field(default_factory=list)  # the sched_ext lines of the run
    watchdog: str = ""  # what became of the test's watchdog_timeout_s (the host's monitor)
    # Its BPF programs once attached (ktstr.system.bpf.ProgInfo.to_dict() each, plus the
    # fdinfo's own verified_insns): what the verifier accepted, for the verifier sweep.
    programs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.end not in (SchedEnd.RUNNING, SchedEnd.CLEAN)

    def summary(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        msg = f" ({self.message})" if self.message else ""
        code = f", exit code {self.exit_code}" if self.exit_code not in (None, 0) else ""
        return f"scheduler {self.name} {self.end}{why}{msg}{code}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SchedulerRun:
        code = d.get("exit_code")
        return cls(name=str(d.get("name", "")), argv=list(d.get("argv", [])),
                   pid=int(d.get("pid") or 0), ops=str(d.get("ops") or ""),
                   attach_s=float(d.get("attach_s") or 0.0), end=SchedEnd(d.get("end") or ""),
                   reason=str(d.get("reason") or ""), message=str(d.get("message") or ""),
                   exit_code=None if code is None else int(code),
                   output_tail=str(d.get("output_tail") or ""),
                   kernel_log=list(d.get("kernel_log", [])),
                   watchdog=str(d.get("watchdog") or ""),
                   programs=[dict(p) for p in d.get("programs", [])])


@dataclass(frozen=True, slots=True)
class RunOverrides:
    """What this run changes of the test as its module declares it (the verifier sweep
    runs one probe under each cell's scheduler and topology); None: as declared."""

    topology: str | None = None  # "1n2l2c1t"
    scheduler: SchedulerOrder | None = None  # replaces the test's own scheduler

    def to_dict(self) -> dict[str, Any]:
        return {"topology": self.topology,
                "scheduler": None if self.scheduler is None else self.scheduler.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunOverrides:
        sched = d.get("scheduler")
        return cls(topology=d.get("topology"),
                   scheduler=None if sched is None else SchedulerOrder.from_dict(sched))


@dataclass(frozen=True, slots=True)
class TestLocation:
    """Where the guest finds the test: the same file at the same path."""

    __test__ = False  # a pytest-style name, not a test class

    test_id: str
    module_file: str  # absolute path of the test's source file
    module_name: str  # the name the host imported it under
    qualname: str  # attribute of the module holding the KtstrTest
    sys_path: tuple[str, ...] = ()
    cwd: str = ""
    bytecode: str = ""  # a .pyc of module_file the host wrote (ktstr.pyimport), or ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sys_path": list(self.sys_path)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TestLocation:
        return cls(test_id=str(d.get("test_id", "")), module_file=str(d["module_file"]),
                   module_name=str(d["module_name"]), qualname=str(d["qualname"]),
                   sys_path=tuple(d.get("sys_path", ())), cwd=str(d.get("cwd", "")),
                   bytecode=str(d.get("bytecode", "")))


@dataclass(frozen=True, slots=True)
class TestRequest:
    """The "go" message of a test run: what the host decided for it, nothing the test's
    own definition says."""

    __test__ = False  # a pytest-style name, not a test class

    where: TestLocation
    accel: str  # "kvm" or "tcg": selects the threshold profile
    seed: int = 0
    wall_time: float = 0.0  # host wall clock at "go"; the guest sets its clock from it
    # The binary the host found for each scheduler the test may start, by scheduler name
    # (none for a kernel built-in): host paths are guest paths.
    scheduler_binaries: Mapping[str, str] = field(default_factory=dict)
    attach_timeout_s: float = 30.0  # from a scheduler's start to sched_ext enabled
    overrides: RunOverrides = field(default_factory=RunOverrides)

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where.to_dict(), "accel": self.accel, "seed": self.seed,
                "wall_time": self.wall_time,
                "scheduler_binaries": dict(self.scheduler_binaries),
                "attach_timeout_s": self.attach_timeout_s,
                "overrides": self.overrides.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TestRequest:
        return cls(where=TestLocation.from_dict(d["where"]), accel=str(d["accel"]),
                   seed=int(d.get("seed", 0)), wall_time=float(d.get("wall_time", 0.0)),
                   scheduler_binaries={str(k): str(v) for k, v in
                                       d.get("scheduler_binaries", {}).items()},
                   attach_timeout_s=float(d.get("attach_timeout_s", 30.0)),
                   overrides=RunOverrides.from_dict(d.get("overrides") or {}))


@dataclass(frozen=True, slots=True)
class ShellRequest:
    """`ktstr shell`: a command (or an interactive shell on the console) in the guest."""

    topology: str
    cwd: str
    command: str | None = None  # run with /bin/sh -c; None: interactive shell on ttyS0
    shell: str = "/bin/bash"
    wall_time: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShellRequest:
        return cls(**d)


def encode(msg: Mapping[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    obj = json.loads(line)
    if not isinstance(obj, dict) or "type" not in obj:
        raise ValueError(f"not a ktstr message: {line[:200]!r}")
    return obj
