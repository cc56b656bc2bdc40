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
    guest -> host  {"type": "result", "outcome": ..., ...}
    guest -> host  {"type": "bye"}                        (then it powers off)

Requests (`GuestPort.request`; served by ktstr.runner.snapshots on the host):

    "snapshot"       {"name"}: freeze the guest, capture, resume; reply {"name",
                     "frozen_ms", "hits", "missing"}
    "get_snapshot"   {"name"}: reply {"capture": {...} | None, "names": [...]}, the latest
                     capture under name with "hits" (None: none under that name)
    "list_snapshots" {}: reply {"names": [...]}
    "write_vars"     {"vars": {global: value}}: write the attached scheduler's globals
                     while the guest stands still; reply {"values": {global: read back}}

A result is sent once; a host that sees the port close without one knows the
guest died and reports the console tail instead.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

PORT_NAME = "ktstr.result"
#: The 9p mount tag of the host root (QemuArgs.host_root; mounted by the guest agent).
ROOT_TAG = "hostroot"


class Outcome:
    """How a test body ended inside the guest."""

    PASSED = "passed"
    FAILED = "failed"  # a check failed, or the body raised
    ERROR = "error"  # the harness itself could not run the body (e.g. topology mismatch)
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class TestRequest:
    """Everything the guest needs to find and run one test; sent in the "go" message."""

    module_file: str  # absolute path of the test's source file (same path in the guest)
    module_name: str  # the name the host imported it under
    qualname: str  # attribute of the module holding the KtstrTest
    sys_path: list[str]
    cwd: str
    topology: str  # the resolved Topology, "1n2l2c1t"
    accel: str  # "kvm" or "tcg": selects the threshold profile
    seed: int = 0
    wall_time: float = 0.0  # host wall clock at "go"; the guest sets its clock from it
    env: dict[str, str] = field(default_factory=dict)
    scheduler: dict[str, Any] | None = None  # ktstr.guest.schedctl.SchedulerOrder; None: EEVDF
    staged_schedulers: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name
    # Globals of the scheduler written (by the host) once it attached, before the body.
    scheduler_vars: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TestRequest:
        return cls(**d)


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    obj = json.loads(line)
    if not isinstance(obj, dict) or "type" not in obj:
        raise ValueError(f"not a ktstr message: {line[:200]!r}")
    return obj


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
