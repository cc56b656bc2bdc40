"""The scheduler slot of one run: what is attached now, switched on the body's orders.

A test starts under its own scheduler (or EEVDF); its steps may then detach it
(the rest runs under EEVDF), attach one, restart it or replace it by another
(the scheduler ops of ktstr.scenario.ops, for the A/B use: one workload under a scheduler and
then under EEVDF in one VM). The slot does each switch with `ManagedScheduler`
and keeps every scheduler the run had, in start order, for the report.

The rules: attaching the scheduler that is already attached is a
no-op, attaching while another one is attached is an error (replace it);
detaching with nothing attached is a no-op; restarting needs one attached.
Only staged schedulers can be attached: the host found their binaries before
the boot (`@ktstr_test(staged_schedulers=[...])`).

The watch (`SchedulerWatch`) asks `healthy()` every 100 ms; a switch in
progress holds the lock, and the watch does not judge a scheduler that is
being stopped or started on purpose.
"""

from __future__ import annotations

import threading

from ktstr.errors import KtstrError
from ktstr.guest.schedctl import ManagedScheduler, SchedulerFailed, SchedulerOrder, SchedulerRun
from ktstr.scheduler import Scheduler


class SchedulerSlot:
    def __init__(self, own: SchedulerOrder | None,
                 staged: dict[str, SchedulerOrder] | None = None) -> None:
        self._own = own
        self._staged = dict(staged or {})
        self._lock = threading.Lock()
        self._current: ManagedScheduler | None = None
        self.runs: list[SchedulerRun] = []

    @property
    def pid(self) -> int | None:
        """The attached scheduler's process (None under EEVDF or for a kernel built-in)."""
        current = self._current
        return current.pid if current is not None else None

    @property
    def name(self) -> str | None:
        """The attached scheduler's name; None under EEVDF."""
        current = self._current
        return current.order.name if current is not None else None

    @property
    def staged(self) -> frozenset[str]:
        """The names of the schedulers `attach`/`replace` can start."""
        return frozenset(self._staged)

    def start(self) -> None:
        """Attach the test's own scheduler, if it has one (SchedulerFailed if it cannot)."""
        if self._own is not None:
            with self._lock:
                self._start(self._own)

    def attach(self, sched: Scheduler) -> None:
        with self._lock:
            if self._current is not None:
                if self._current.order.name == sched.name:
                    return
                raise KtstrError(f"attach_scheduler({sched.name}): {self._current.order.name} "
                                 "is attached; hint: Op.replace_scheduler swaps it, or "
                                 "Op.detach_scheduler first")
            self._start(self._order(sched))

    def detach(self) -> None:
        with self._lock:
            if self._current is not None:
                self._stop()

    def restart(self) -> None:
        with self._lock:
            if self._current is None:
                raise KtstrError("restart_scheduler: no scheduler is attached (the run is "
                                 "under EEVDF); hint: Op.attach_scheduler(...) attaches one")
            order = self._current.order
            self._stop()
            self._start(order)

    def replace(self, sched: Scheduler) -> None:
        with self._lock:
            order = self._order(sched)
            if self._current is not None:
                self._stop()
            self._start(order)

    def healthy(self) -> bool:
        """False once the attached scheduler died or left on its own; a switch in
        progress counts as healthy (it reports its own failures)."""
        if not self._lock.acquire(blocking=False):
            return True
        try:
            return self._current is None or self._current.healthy()
        finally:
            self._lock.release()

    def summary(self) -> str:
        """How the scheduler that stopped the run ended (for the body's interruption)."""
        failed = self.failed()
        return failed.summary() if failed is not None else "scheduler stopped"

    def stop(self) -> None:
        """After the body: stop what is attached (its end goes into `runs`)."""
        with self._lock:
            if self._current is not None:
                current, self._current = self._current, None
                current.stop()

    def failed(self) -> SchedulerRun | None:
        """The first scheduler of the run that did not end clean (or is failing now)."""
        return next((r for r in self.runs if r.failed), None)

    # -- switching (under the lock) -----------------------------------------------------

    def _order(self, sched: Scheduler) -> SchedulerOrder:
        order = self._staged.get(sched.name)
        if order is None:
            staged = ", ".join(sorted(self._staged)) or "none"
            raise KtstrError(f"scheduler {sched.name} is not staged for this test (staged: "
                             f"{staged}); hint: @ktstr_test(staged_schedulers=[...]) names "
                             "every scheduler the steps attach, so that it is found before "
                             "the VM boots")
        return order

    def _start(self, order: SchedulerOrder) -> None:
        managed = ManagedScheduler(order)
        self.runs.append(managed.run)
        managed.start()  # SchedulerFailed: never attached, or failed at once
        self._current = managed

    def _stop(self) -> None:
        assert self._current is not None
        current, self._current = self._current, None
        run = current.stop()
        if run.failed:  # it had died already: the switch cannot hide that
            raise SchedulerFailed(run)
