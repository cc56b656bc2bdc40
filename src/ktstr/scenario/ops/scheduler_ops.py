"""The ops on the run's scheduler: attach, detach, restart, replace mid-run.

They drive `ctx.scheduler`, the run's scheduler slot (a `SchedulerControl`
that the guest agent provides), so a Ctx without one refuses them before
anything runs. A scheduler to attach must be staged for the test
(`@ktstr_test(staged_schedulers=[...])`) so that it is found before the VM
boots, and must be a sched_ext scheduler: EEVDF is what runs when none is
attached, hence `Op.detach_scheduler()`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ktstr.errors import ConfigError
from ktstr.scenario.ctx import Ctx, SchedulerControl
from ktstr.scenario.ops import Op
from ktstr.scheduler import Scheduler

if TYPE_CHECKING:
    from ktstr.scenario.dry_run import DryRun
    from ktstr.scenario.live import LiveScenario

log = logging.getLogger(__name__)


class SchedulerOp(Op):
    """An op on the run's scheduler slot rather than on a cgroup."""

    __slots__ = ()

    def slot(self, ctx: Ctx) -> SchedulerControl:
        """`ctx.scheduler`; ConfigError if this Ctx has none."""
        if ctx.scheduler is None:
            raise ConfigError(f"{self!r} needs the run's scheduler slot, which this Ctx lacks; "
                              "hint: scheduler ops run in a ktstr test (a ctx from the guest "
                              "agent)")
        return ctx.scheduler

    def check(self, dry: DryRun) -> None:
        self.slot(dry.ctx)

    def switch(self, slot: SchedulerControl) -> None:
        """Change what `slot` runs (SchedulerFailed/KtstrError if it cannot)."""
        raise NotImplementedError(f"{type(self).__name__}.switch")

    def apply(self, live: LiveScenario) -> None:
        slot = self.slot(live.ctx)
        self.switch(slot)
        log.info("step %d: %r -> %s attached", live.ctx.current_step, self,
                 slot.name or "no scheduler")


def _check_scheduler(what: str, sched: object) -> None:
    if not isinstance(sched, Scheduler):
        raise ConfigError(f"{what} {sched!r} is not a Scheduler; hint: pass one built with "
                          "declare_scheduler(...)")
    if not sched.spec.has_active_scheduling():
        raise ConfigError(f"{what} {sched.name} is EEVDF, which is not attached but left "
                          "to; hint: Op.detach_scheduler() runs the rest under EEVDF")


def _check_staged(dry: DryRun, op: SchedulerOp, sched: Scheduler) -> None:
    slot = op.slot(dry.ctx)
    if sched.name not in slot.staged:
        staged = ", ".join(sorted(slot.staged)) or "none"
        raise ConfigError(f"{dry.where}: {op!r}: {sched.name} is not staged for this test "
                          f"(staged: {staged}); hint: add it to @ktstr_test("
                          "staged_schedulers=[...]) so that it is found before the VM boots")


@dataclass(frozen=True, slots=True)
class AttachScheduler(SchedulerOp):
    """`Op.attach_scheduler`: a staged sched_ext scheduler attached mid-run."""

    scheduler: Scheduler

    def __post_init__(self) -> None:
        _check_scheduler("Op.attach_scheduler:", self.scheduler)

    def __repr__(self) -> str:
        return f"Op.attach_scheduler({self.scheduler.name})"

    def check(self, dry: DryRun) -> None:
        _check_staged(dry, self, self.scheduler)

    def switch(self, slot: SchedulerControl) -> None:
        slot.attach(self.scheduler)


@dataclass(frozen=True, slots=True)
class DetachScheduler(SchedulerOp):
    """`Op.detach_scheduler`: the attached scheduler stopped; the run goes on under EEVDF."""

    def switch(self, slot: SchedulerControl) -> None:
        slot.detach()


@dataclass(frozen=True, slots=True)
class RestartScheduler(SchedulerOp):
    """`Op.restart_scheduler`: the attached scheduler stopped and started again."""

    def switch(self, slot: SchedulerControl) -> None:
        slot.restart()


@dataclass(frozen=True, slots=True)
class ReplaceScheduler(SchedulerOp):
    """`Op.replace_scheduler`: the attached scheduler (if any) stopped, `scheduler` attached."""

    scheduler: Scheduler

    def __post_init__(self) -> None:
        _check_scheduler("Op.replace_scheduler:", self.scheduler)

    def __repr__(self) -> str:
        return f"Op.replace_scheduler({self.scheduler.name})"

    def check(self, dry: DryRun) -> None:
        _check_staged(dry, self, self.scheduler)

    def switch(self, slot: SchedulerControl) -> None:
        slot.replace(self.scheduler)
