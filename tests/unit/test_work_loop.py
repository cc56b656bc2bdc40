"""WorkLoop checkpoints, gaps and work types driven in-process with a fake clock."""

from __future__ import annotations

import pytest

from ktstr import work
from ktstr.work.loop import MAX_WAKE_SAMPLES, WorkLoop, spin_batch

MS = 1_000_000


class FakeClock:
    """Monotonic ns that only moves when the test (or a fake sleep) moves it."""

    def __init__(self) -> None:
        self.t = 0
        self.step = 0  # added on every read, to let loops with deadlines advance

    def __call__(self) -> int:
        self.t += self.step
        return self.t


class FakeCpu:
    def __init__(self, cpu: int = 0) -> None:
        self.cpu = cpu

    def __call__(self) -> int:
        return self.cpu


class FakeStop:
    """Stops after `after` is_set() calls; a wait advances the clock by the timeout."""

    def __init__(self, clock: FakeClock, after: int | None = None,
                 overshoot_ns: int = 0) -> None:
        self.clock = clock
        self.after = after
        self.calls = 0
        self.overshoot_ns = overshoot_ns
        self.waits: list[float | None] = []

    def is_set(self) -> bool:
        self.calls += 1
        return self.after is not None and self.calls > self.after

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        assert timeout is not None
        self.clock.t += int(timeout * 1e9) + self.overshoot_ns
        return self.is_set()


def make(after: int | None = None, overshoot_ns: int = 0
         ) -> tuple[WorkLoop, FakeClock, FakeCpu, FakeStop]:
    clock, cpu = FakeClock(), FakeCpu()
    stop = FakeStop(clock, after, overshoot_ns)
    loop = WorkLoop(stop, clock=clock, getcpu=cpu, batch=8)
    return loop, clock, cpu, stop


def test_spin_batch_is_deterministic_arithmetic() -> None:
    assert spin_batch(3, 1) == spin_batch(3, 1)
    assert spin_batch(3, 1) != spin_batch(4, 1)


def test_longest_gap_between_checkpoints_records_cpu_and_time_at_its_end() -> None:
    loop, clock, cpu, _ = make()
    loop.begin()
    clock.t = 1 * MS
    loop.spin()
    clock.t = 1 * MS + 500_000
    loop.spin()
    clock.t, cpu.cpu = 5 * MS, 3
    loop.spin()
    clock.t, cpu.cpu = 6 * MS, 1
    loop.spin()
    assert loop.max_gap_ns == 3_500_000
    assert loop.max_gap_cpu == 3
    assert loop.max_gap_at_ns == 5 * MS
    assert loop.work_units == 4
    assert loop.cpus == {0, 1, 3}


def test_sleep_is_not_a_gap_and_the_gap_clock_restarts_on_wake() -> None:
    loop, clock, _, stop = make(overshoot_ns=70_000)
    loop.begin()
    clock.t = 1 * MS
    loop.spin()
    loop.sleep_for(0.1)  # the clock jumps 100.07 ms
    clock.t += 2 * MS
    loop.spin()
    assert stop.waits == [0.1]
    assert loop.max_gap_ns == 2 * MS
    assert loop.wake_overshoot_ns == [70_000]
    assert loop.wake_count == 1


def test_time_before_a_sleep_is_a_checkpointed_gap() -> None:
    loop, clock, _, _ = make()
    loop.begin()
    clock.t = 7 * MS  # runnable but not checked in for 7 ms, then it sleeps
    loop.sleep_for(0.05)
    assert loop.max_gap_ns == 7 * MS


def test_late_yield_is_a_gap_and_counts_a_unit_unless_told_not_to() -> None:
    loop, clock, _, _ = make()
    loop.begin()
    clock.t = 3 * MS
    loop.yield_()
    loop.yield_(count=False)
    assert loop.max_gap_ns == 3 * MS
    assert loop.work_units == 1


def test_sleep_after_stop_returns_without_waiting() -> None:
    loop, _, _, stop = make(after=0)
    loop.begin()
    loop.sleep_for(1.0)
    assert stop.waits == []
    assert loop.wake_count == 0


def test_wake_samples_are_bounded() -> None:
    loop, _, _, _ = make()
    loop.begin()
    for _ in range(MAX_WAKE_SAMPLES + 50):
        loop._record_overshoot(5)
    assert len(loop.wake_overshoot_ns) == MAX_WAKE_SAMPLES
    assert loop.wake_count == MAX_WAKE_SAMPLES + 50


def test_wall_time_runs_from_begin_to_finish() -> None:
    loop, clock, _, _ = make()
    clock.t = 10 * MS
    loop.begin()
    clock.t = 35 * MS
    loop.finish()
    clock.t = 99 * MS
    assert loop.wall_ns == 25 * MS


def test_spinwait_does_one_unit_per_iteration_until_stopped() -> None:
    loop, _, _, _ = make(after=10)
    loop.begin()
    work.SpinWait().run(loop)
    assert loop.work_units == loop.iterations == 10


def test_yieldheavy_counts_each_yield() -> None:
    loop, _, _, _ = make(after=6)
    loop.begin()
    work.YieldHeavy().run(loop)
    assert loop.work_units == loop.iterations == 6


def test_mixed_counts_spins_not_yields() -> None:
    loop, _, _, _ = make(after=5)
    loop.begin()
    work.Mixed().run(loop)
    assert loop.iterations == 5
    assert loop.work_units == 5


def test_bursty_spins_for_burst_then_sleeps() -> None:
    loop, clock, _, stop = make(after=200)
    clock.step = 1 * MS  # each clock read is 1 ms later
    loop.begin()
    work.Bursty(burst=0.010, sleep=0.050).run(loop)
    assert stop.waits and all(w == 0.05 for w in stop.waits)
    # ~10 spin units (1 ms each) per 10 ms burst, one sleep per iteration
    assert loop.iterations >= 2
    assert 8 * loop.iterations <= loop.work_units <= 12 * (loop.iterations + 1)
    assert loop.max_gap_ns < 5 * MS  # the 50 ms sleeps never count


def test_sequence_runs_phases_in_order_and_loops() -> None:
    calls: list[str] = []

    class Recorder(WorkLoop):
        def spin_for(self, secs: float) -> None:
            calls.append(f"spin {secs}")

        def sleep_for(self, secs: float) -> None:
            calls.append(f"sleep {secs}")

        def yield_for(self, secs: float) -> None:
            calls.append(f"yield {secs}")

    clock = FakeClock()
    loop = Recorder(FakeStop(clock, after=7), clock=clock, getcpu=FakeCpu())
    loop.begin()
    work.Sequence(work.Spin(0.1), work.Sleep(0.05), work.Yield(0.02)).run(loop)
    # stop arrives during the second pass: one complete pass counted
    assert calls == ["spin 0.1", "sleep 0.05", "yield 0.02", "spin 0.1", "sleep 0.05"]
    assert loop.iterations == 1


def test_base_worktype_run_is_not_implemented() -> None:
    loop, _, _, _ = make(after=0)
    with pytest.raises(NotImplementedError):
        work.WorkType().run(loop)


def test_a_wait_for_a_partner_is_not_a_gap_and_its_wake_is_a_sample() -> None:
    loop, clock, cpu, _ = make()
    loop.begin()
    clock.t = 1 * MS
    loop.spin()
    clock.t += 500 * MS  # blocked on a futex until the partner's turn ends
    cpu.cpu = 1
    loop.resume_after_wait(40_000)
    clock.t += 2 * MS
    loop.spin()
    assert loop.max_gap_ns == 2 * MS
    assert loop.wake_overshoot_ns == [40_000] and loop.wake_count == 1
    assert loop.cpus == {0, 1}
