"""The ops that capture the scheduler's state: now (`Op.snapshot`) or on each write
of a kernel variable (`Op.watch_snapshot`).

Both ask `ctx.snapshot_control`, the host in a VM, so a Ctx without one
refuses them before anything runs. The guest has four hardware debug slots:
one watches the scheduler's error exit, so a scenario may arm at most
`MAX_WATCHES` watches; the count is checked before anything runs. Captures
are read back through `ctx.snapshots`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ktstr.errors import ConfigError
from ktstr.scenario.ctx import Ctx
from ktstr.scenario.ops import Op
from ktstr.scenario.snapshot import SnapshotControl

if TYPE_CHECKING:
    from ktstr.scenario.dry_run import DryRun
    from ktstr.scenario.live import LiveScenario

log = logging.getLogger(__name__)

#: Watches a scenario may arm: four debug slots, one kept for the error-exit trigger.
MAX_WATCHES = 3


def _control(ctx: Ctx, op: Op) -> SnapshotControl:
    if ctx.snapshot_control is None:
        raise ConfigError(f"{op!r} needs a host that takes captures, which this Ctx lacks; "
                          "hint: snapshot ops run in a ktstr test (a ctx from the guest agent)")
    return ctx.snapshot_control


@dataclass(frozen=True, slots=True)
class CaptureSnapshot(Op):
    """`Op.snapshot`: the scheduler's state captured under `name`, the guest frozen meanwhile."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"Op.snapshot: name {self.name!r} is not a snapshot name; hint: "
                              "pass a non-empty string such as 'after_spawn'")

    def __repr__(self) -> str:
        return f"Op.snapshot({self.name!r})"

    def check(self, dry: DryRun) -> None:
        _control(dry.ctx, self)

    def apply(self, live: LiveScenario) -> None:
        took = _control(live.ctx, self).capture(self.name)
        log.info("step %d: %r: %.1f ms frozen", live.ctx.current_step, self,
                 float(took.get("frozen_ms", 0.0)))


@dataclass(frozen=True, slots=True)
class WatchSnapshot(Op):
    """`Op.watch_snapshot`: a capture each time the guest kernel writes `symbol`."""

    symbol: str

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not re.fullmatch(r"[A-Za-z_][\w.$]*",
                                                                  self.symbol or ""):
            raise ConfigError(f"Op.watch_snapshot: {self.symbol!r} is not a kernel symbol "
                              "name; hint: name a kernel variable verbatim as in "
                              "/proc/kallsyms, e.g. 'sysctl_sched_rr_timeslice'")

    def __repr__(self) -> str:
        return f"Op.watch_snapshot({self.symbol!r})"

    def check(self, dry: DryRun) -> None:
        _control(dry.ctx, self)
        dry.watched.add(self.symbol)
        if len(dry.watched) > MAX_WATCHES:
            raise ConfigError(
                f"{dry.where}: {self!r} would be watch number {len(dry.watched)} of the "
                f"scenario ({', '.join(sorted(dry.watched))}); at most {MAX_WATCHES} "
                "are allowed (a fourth debug slot watches the scheduler's error "
                "exit); hint: watch fewer symbols")

    def apply(self, live: LiveScenario) -> None:
        armed = _control(live.ctx, self).watch(self.symbol)
        log.info("step %d: %r: slot %s at %#x", live.ctx.current_step, self,
                 armed.get("slot"), int(armed.get("address", 0)))
