"""The scheduler slot's rules (the scheduler ops), with a fake ManagedScheduler.

The real start/stop against sched_ext is proven in tests/vm/test_scheduler_ops.py;
here only which scheduler is started or stopped, and when, is checked.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from ktstr import Scheduler
from ktstr.errors import KtstrError
from ktstr.guest import schedslot
from ktstr.guest.schedctl import SchedEnd, SchedulerFailed, SchedulerOrder, SchedulerRun
from ktstr.guest.schedslot import SchedulerSlot

SIMPLE, CENTRAL = Scheduler("scx_simple"), Scheduler("scx_central")

class FakeManaged:
    events: ClassVar[list[tuple[str, str]]] = []
    next_pid = 100
    fail_start: ClassVar[set[str]] = set()
    dead: ClassVar[set[str]] = set()

    def __init__(self, order: SchedulerOrder) -> None:
        self.order = order
        self.run = SchedulerRun(order.name, list(order.argv))
        FakeManaged.next_pid += 1
        self.pid = FakeManaged.next_pid

    def start(self) -> None:
        self.events.append(("start", self.order.name))
        if self.order.name in self.fail_start:
            self.run.end = SchedEnd.NEVER
            raise SchedulerFailed(self.run)

    def healthy(self) -> bool:
        if self.order.name in self.dead:
            self.run.end = SchedEnd.CRASH
            return False
        return True

    def stop(self) -> SchedulerRun:
        self.events.append(("stop", self.order.name))
        self.run.end = self.run.end or SchedEnd.CLEAN
        return self.run

@pytest.fixture(autouse=True)
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeManaged.events, FakeManaged.fail_start, FakeManaged.dead = [], set(), set()
    monkeypatch.setattr(schedslot, "ManagedScheduler", FakeManaged)

def order(name: str) -> SchedulerOrder:
    return SchedulerOrder(name=name, argv=[f"/x/{name}"])

def slot(own: str | None = "scx_simple", *staged: str) -> SchedulerSlot:
    names = {n for n in (own, *staged) if n}
    return SchedulerSlot(order(own) if own else None, {n: order(n) for n in names})

def ends(s: SchedulerSlot) -> list[tuple[str, str]]:
    return [(r.name, r.end) for r in s.runs]

def test_the_tests_own_scheduler_starts_and_stops_clean() -> None:
    s = slot()
    s.start()
    assert s.name == "scx_simple" and s.pid is not None and s.healthy()
    s.stop()
    assert FakeManaged.events == [("start", "scx_simple"), ("stop", "scx_simple")]
    assert ends(s) == [("scx_simple", "clean")] and s.failed() is None
    assert s.name is None and s.pid is None

def test_eevdf_start_is_nothing_and_detach_without_a_scheduler_is_a_no_op() -> None:
    s = slot(None, "scx_simple")
    s.start()
    s.detach()
    assert s.name is None and s.pid is None and FakeManaged.events == [] and s.healthy()

def test_attaching_the_attached_scheduler_is_a_no_op_and_another_is_refused() -> None:
    s = slot("scx_simple", "scx_central")
    s.start()
    s.attach(SIMPLE)
    assert FakeManaged.events == [("start", "scx_simple")]
    with pytest.raises(KtstrError, match=r"scx_simple is attached.*replace_scheduler"):
        s.attach(CENTRAL)

def test_restart_starts_a_new_process_with_the_same_orders() -> None:
    s = slot()
    s.start()
    first = s.pid
    s.restart()
    assert s.name == "scx_simple" and s.pid != first
    assert FakeManaged.events == [("start", "scx_simple"), ("stop", "scx_simple"),
                                  ("start", "scx_simple")]
    s.detach()
    with pytest.raises(KtstrError, match="no scheduler is attached"):
        s.restart()

def test_replace_stops_the_attached_one_first_and_works_from_eevdf() -> None:
    s = slot(None, "scx_simple", "scx_central")
    s.replace(SIMPLE)
    s.replace(CENTRAL)
    assert FakeManaged.events == [("start", "scx_simple"), ("stop", "scx_simple"),
                                  ("start", "scx_central")]
    assert ends(s) == [("scx_simple", "clean"), ("scx_central", "")]

def test_an_unstaged_scheduler_is_named_with_the_staged_ones() -> None:
    s = slot("scx_simple")
    with pytest.raises(KtstrError, match=r"scx_central is not staged.*\(staged: scx_simple\)"):
        s.replace(CENTRAL)
    assert FakeManaged.events == []

def test_a_failed_attach_is_kept_and_reported() -> None:
    s = slot(None, "scx_central")
    FakeManaged.fail_start.add("scx_central")
    with pytest.raises(SchedulerFailed):
        s.attach(CENTRAL)
    assert s.name is None
    failed = s.failed()
    assert failed is not None and failed.end == "never attached"

def test_a_scheduler_that_died_before_a_switch_fails_the_switch() -> None:
    s = slot("scx_simple", "scx_central")
    s.start()
    FakeManaged.dead.add("scx_simple")
    assert not s.healthy()
    with pytest.raises(SchedulerFailed):
        s.replace(CENTRAL)
    assert s.failed() is not None and s.summary().startswith("scheduler scx_simple crash")

def test_the_watch_does_not_judge_a_switch_in_progress() -> None:
    s = slot()
    s.start()
    FakeManaged.dead.add("scx_simple")
    with s._lock:  # what attach/detach hold while they switch
        assert s.healthy()
    assert not s.healthy()

def test_staged_names() -> None:
    assert slot("scx_simple", "scx_central").staged == {"scx_simple", "scx_central"}
