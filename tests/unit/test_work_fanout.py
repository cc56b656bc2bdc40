"""Unit tests for the group arena and the fan-out / herd / epoll / chain wake types."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest
from procs import run_workers

from ktstr.errors import ConfigError, SystemError_
from ktstr.work.base import WorkType
from ktstr.work.chain import (
    WAKE_CHAIN_DEPTH,
    WAKE_CHAIN_WAKE,
    WAKE_CHAIN_WORK_PER_HOP,
    WakeChain,
    WakeMechanism,
)
from ktstr.work.fanout import (
    EPOLL_STORM_CONSUMERS,
    EPOLL_STORM_EVENTS_PER_BURST,
    EPOLL_STORM_PRODUCERS,
    FAN_OUT_COMPUTE_FAN_OUT,
    FUTEX_FAN_OUT_FAN_OUT,
    FUTEX_FAN_OUT_SPIN_ITERS,
    THUNDERING_HERD_BATCHES,
    THUNDERING_HERD_INTER_BATCH_MS,
    THUNDERING_HERD_WAITERS,
    EpollStorm,
    FanOutCompute,
    FutexFanOut,
    ThunderingHerd,
    futex_add_wake,
    matmul,
    wake_op,
)
from ktstr.work.pairing import MAX_GROUP_SIZE, GroupArena, PairArena, Seat
from ktstr.work.policy import CloneMode
from ktstr.work.report import WorkerReport
from ktstr.workload.config import WorkloadConfig

# -- GroupArena ---------------------------------------------------------------------


def test_group_arena_fills_roles_in_order_per_key() -> None:
    arena = GroupArena(3, words=2, stamps=3, slots=4)
    seats = [arena.claim(7) for _ in range(3)]
    assert [(s.slot, s.role, s.size) for s in seats] == [(0, 0, 3), (0, 1, 3), (0, 2, 3)]
    other = arena.claim(8)
    assert (other.slot, other.role) == (1, 0)
    assert arena.claim(7).slot == 2  # slot 0 is full: a new group opens
    assert arena.present(seats[0]) == 3
    arena.release(seats[1])
    assert arena.present(seats[0]) == 2
    back = arena.claim(7)  # the freed role is the lowest free one
    assert (back.slot, back.role, back.generation) == (0, 1, seats[0].generation)


def test_group_arena_words_and_stamps_are_shared_and_zeroed_on_reuse() -> None:
    arena = GroupArena(2, words=3, stamps=2, slots=2)
    a = arena.claim(1)
    b = arena.claim(1)
    arena.word(a, 2).value = 41
    assert arena.word(b, 2).value == 41
    arena.set_stamp(a, 123, 1)
    assert arena.stamp(b, 1) == 123 and arena.stamp(b, 0) == 0
    assert arena.stamp_cell(b, 1).value == 123
    word0 = ctypes.addressof(arena.word(a, 0))
    assert word0 % 4 == 0 and word0 != ctypes.addressof(arena.word(a, 1))
    arena.release(a)
    arena.release(b)
    again = arena.claim(9)
    assert again.generation == a.generation + 1
    assert arena.word(again, 2).value == 0 and arena.stamp(again, 1) == 0
    with pytest.raises(IndexError):
        arena.word(again, 3)
    with pytest.raises(IndexError):
        arena.stamp(again, 2)


def test_group_arena_seat_releases_on_exit_and_on_error_calling_hooks() -> None:
    arena = GroupArena(2, slots=2)
    events: list[tuple[str, int]] = []
    with arena.seat(5, on_seat=lambda s: events.append(("seat", s.role)),
                    on_leave=lambda s: events.append(("leave", s.role))) as seat:
        assert arena.present(seat) == 1 and events == [("seat", 0)]
    assert events == [("seat", 0), ("leave", 0)]
    assert arena.present(seat) == 0
    with pytest.raises(RuntimeError, match="boom"), arena.seat(5) as seat:
        raise RuntimeError("boom")
    assert arena.present(seat) == 0  # released although the block raised
    again = arena.claim(6)
    assert (again.slot, again.role) == (0, 0)  # the slot is free again


def test_group_arena_full_and_bad_sizes() -> None:
    arena = GroupArena(4, slots=2)
    arena.claim(1)
    arena.claim(2)
    with pytest.raises(SystemError_, match="all 2 group slots"):
        arena.claim(3)
    for bad in (1, 0, MAX_GROUP_SIZE + 1, True, 2.0):
        with pytest.raises(ConfigError, match="group size"):
            GroupArena(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="words"):
        GroupArena(2, words=-1)


def test_big_groups_span_several_pages() -> None:
    arena = GroupArena(MAX_GROUP_SIZE, words=MAX_GROUP_SIZE, stamps=MAX_GROUP_SIZE)
    seats = [arena.claim(5) for _ in range(MAX_GROUP_SIZE)]
    assert [s.role for s in seats] == list(range(MAX_GROUP_SIZE))
    last = GroupArena(2, slots=arena.slots)
    assert last.slots == arena.slots
    arena.word(seats[-1], MAX_GROUP_SIZE - 1).value = 3


def test_seat_partner_is_the_next_role_round_the_group() -> None:
    assert Seat(0, 0, 1).partner == 1 and Seat(0, 1, 1).partner == 0
    assert [Seat(0, r, 1, 3).partner for r in range(3)] == [1, 2, 0]


def test_pair_arena_is_a_group_arena_of_two() -> None:
    arena = PairArena()
    a, b = arena.claim(3), arena.claim(3)
    assert isinstance(arena, GroupArena) and arena.size == 2
    arena.turn_word(a).value = 1
    assert arena.turn_word(b).value == 1


# -- the wake types: names, defaults, validation ----------------------------------------


NAMES = ("FutexFanOut", "FanOutCompute", "ThunderingHerd", "EpollStorm", "WakeChain")


@pytest.mark.parametrize("name", NAMES)
def test_from_name_builds_the_seed_defaults(name: str) -> None:
    built = WorkType.from_name(name)
    assert built.name == name and name in WorkType.ALL_NAMES
    assert built.group_size is not None and built.group_size >= 2


def test_defaults_and_group_sizes() -> None:
    f = FutexFanOut()
    assert (f.fan_out, f.spin_iters) == (FUTEX_FAN_OUT_FAN_OUT, FUTEX_FAN_OUT_SPIN_ITERS)
    assert f.group_size == FUTEX_FAN_OUT_FAN_OUT + 1
    assert FutexFanOut(fan_out=7).group_size == 8
    assert FanOutCompute().group_size == FAN_OUT_COMPUTE_FAN_OUT + 1
    assert FanOutCompute(fan_out=2).group_size == 3
    h = ThunderingHerd()
    assert (h.waiters, h.batches, h.inter_batch_ms) == (
        THUNDERING_HERD_WAITERS, THUNDERING_HERD_BATCHES, THUNDERING_HERD_INTER_BATCH_MS)
    assert h.group_size == THUNDERING_HERD_WAITERS + 1
    e = EpollStorm()
    assert (e.producers, e.consumers, e.events_per_burst) == (
        EPOLL_STORM_PRODUCERS, EPOLL_STORM_CONSUMERS, EPOLL_STORM_EVENTS_PER_BURST)
    assert EpollStorm(producers=2, consumers=3).group_size == 5
    c = WakeChain()
    assert (c.depth, c.wake, c.work_per_hop) == (
        WAKE_CHAIN_DEPTH, WAKE_CHAIN_WAKE, WAKE_CHAIN_WORK_PER_HOP)
    assert WakeChain(depth=3).group_size == 3


def test_wake_chain_takes_timedelta_and_mechanism_names() -> None:
    from datetime import timedelta

    c = WakeChain(3, "futex", timedelta(milliseconds=2))
    assert c.wake is WakeMechanism.FUTEX and c.work_per_hop == pytest.approx(0.002)
    assert WakeChain(wake="PIPE").wake is WakeMechanism.PIPE
    assert WakeChain(2, WakeMechanism.FUTEX, 0.001) == WakeChain(2, "futex", 0.001)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: FutexFanOut(0), "FutexFanOut fan_out = 0 is not a positive integer"),
    (lambda: FutexFanOut(64), "FutexFanOut fan_out = 64 makes groups of 65 workers"),
    (lambda: FutexFanOut(2, -1), "FutexFanOut spin_iters = -1 is not an integer >= 0"),
    (lambda: FanOutCompute(matrix_dim=0), "FanOutCompute matrix_dim = 0"),
    (lambda: FanOutCompute(operations=0), "FanOutCompute operations = 0"),
    (lambda: FanOutCompute(sleep_us=-5), "FanOutCompute sleep_us = -5"),
    (lambda: ThunderingHerd(0), "ThunderingHerd waiters = 0"),
    (lambda: ThunderingHerd(batches=0), "ThunderingHerd batches = 0"),
    (lambda: ThunderingHerd(inter_batch_ms=-1), "ThunderingHerd inter_batch_ms = -1"),
    (lambda: ThunderingHerd(2.5), "ThunderingHerd waiters = 2.5"),
    (lambda: EpollStorm(0), "EpollStorm producers = 0"),
    (lambda: EpollStorm(1, 0), "EpollStorm consumers = 0"),
    (lambda: EpollStorm(40, 30), "EpollStorm consumers = 30 makes groups of 70"),
    (lambda: EpollStorm(events_per_burst=0), "EpollStorm events_per_burst = 0"),
    (lambda: EpollStorm(events_per_burst=5000), "EpollStorm events_per_burst = 5000 is too"),
    (lambda: WakeChain(1), "WakeChain depth = 1 is not an integer >= 2"),
    (lambda: WakeChain(65), "WakeChain depth = 65 is too deep"),
    (lambda: WakeChain(wake="signal"), "WakeChain wake = 'signal' is not a wake mechanism"),
    (lambda: WakeChain(work_per_hop=0), "WakeChain work_per_hop = 0 is not a positive"),
])
def test_bad_parameters_raise_config_error_naming_the_value(build, message: str) -> None:
    with pytest.raises(ConfigError, match="hint:") as info:
        build()
    assert message in str(info.value)


@pytest.mark.parametrize(("w", "bad"), [
    (FutexFanOut(3), 6), (FanOutCompute(2), 4), (ThunderingHerd(5), 5),
    (EpollStorm(1, 2), 4), (WakeChain(4), 6)])
def test_workload_config_refuses_a_worker_count_not_a_multiple(w: WorkType, bad: int) -> None:
    assert w.group_size is not None
    WorkloadConfig(workers=w.group_size * 2, work=w)
    with pytest.raises(ConfigError, match=f"use a multiple of {w.group_size}"):
        WorkloadConfig(workers=bad, work=w)


# -- pure logic ----------------------------------------------------------------------


def test_wake_op_encodes_add_and_compare_eq() -> None:
    assert wake_op(1, 3) == (1 << 28) | (1 << 12) | 3
    assert wake_op(-1, 1) == (1 << 28) | (0xFFF << 12) | 1
    with pytest.raises(ValueError):
        wake_op(4096, 0)


def test_futex_add_wake_adds_atomically_in_the_kernel() -> None:
    word = ctypes.c_int32(5)
    addr = ctypes.addressof(word)
    assert futex_add_wake(addr, wake_op(3, 5)) == 0  # nobody waits: nobody woken
    assert word.value == 8
    futex_add_wake(addr, wake_op(-10, 0), 0)
    assert word.value == -2


def test_matmul_multiplies() -> None:
    a = [1.0, 2.0, 3.0, 4.0]
    b = [5.0, 6.0, 7.0, 8.0]
    c = [0.0] * 4
    matmul(a, b, c, 2)
    assert c == [19.0, 22.0, 43.0, 50.0]


# -- real runs (forked workers on the host) -------------------------------------------




def _run(w: WorkType, workers: int, secs: float = 0.6,
         clone_mode: CloneMode = CloneMode.FORK) -> list[WorkerReport]:
    reports = run_workers(w, workers, secs, clone_mode=clone_mode)
    assert all(r.iterations > 0 and r.work_units > 0 for r in reports), reports
    return reports

def _wakees(reports: list[WorkerReport]) -> list[WorkerReport]:
    return [r for r in reports if r.wake_latency_us.count > 0]


@pytest.mark.parametrize("w", [FutexFanOut(3, 64), FanOutCompute(3, 6, 1, 50)],
                         ids=lambda w: w.name)
def test_fan_out_wakes_every_receiver_each_round(w: FutexFanOut | FanOutCompute) -> None:
    reports = _run(w, workers=8)  # two groups of 1 + 3
    woken = _wakees(reports)
    assert len(woken) >= 4, [r.wake_latency_us for r in reports]  # receivers, not messengers
    assert sorted(r.metrics["group_role"] for r in reports) == [0, 0, 1, 1, 2, 2, 3, 3]
    for r in reports:
        if r.metrics["group_role"] == 0:
            assert r.wake_latency_us.count == 0  # a messenger is never woken by a stamp
    # Rounds are lock-step: every worker of a group did the same number of rounds (+-1)
    # (the two groups may differ: each goes at its own pace).
    its = sorted(r.iterations for r in reports)
    assert its[3] - its[0] <= 1 and its[7] - its[4] <= 1, its
    for r in woken:
        lat = r.wake_latency_us
        assert 0 < lat.p50 <= lat.p99 <= lat.max, lat
        assert r.voluntary_csw > 0


def test_thundering_herd_broadcasts_batches_then_idles() -> None:
    reports = _run(ThunderingHerd(4, batches=20, inter_batch_ms=1), workers=5)
    waker = [r for r in reports if r.metrics["group_role"] == 0]
    assert len(waker) == 1 and waker[0].iterations == 20  # exactly `batches` broadcasts
    herd = _wakees(reports)
    assert len(herd) == 4
    for r in herd:
        assert r.iterations == 20 and r.wake_latency_us.count >= 10
        assert r.voluntary_csw >= r.wake_latency_us.count


def test_epoll_storm_consumers_take_every_event() -> None:
    w = EpollStorm(producers=1, consumers=3, events_per_burst=6)
    reports = _run(w, workers=4)
    (producer,) = [r for r in reports if r.metrics["group_role"] == 0]
    consumers = [r for r in reports if r.metrics["group_role"] != 0]
    written = producer.metrics["events_written"]
    taken = sum(r.metrics["events_taken"] for r in consumers)
    assert producer.wake_latency_us.count == 0 and written == 6 * producer.iterations
    # Each burst is fully taken before the next: at most the last one is in flight.
    assert written - 6 <= taken <= written, (written, taken)
    assert sum(r.wake_latency_us.count for r in consumers) > 0


@pytest.mark.parametrize("wake", list(WakeMechanism), ids=lambda m: m.name)
def test_wake_chain_passes_one_token_round_the_ring(wake: WakeMechanism) -> None:
    leftovers = {p.name for p in Path("/tmp").glob("ktstr-chain-*")}
    reports = _run(WakeChain(3, wake, 0.0005), workers=3)
    its = [r.iterations for r in reports]
    assert max(its) - min(its) <= 1, its  # one token: stages take strict turns
    for r in reports:
        assert r.wake_latency_us.count > 0 and r.voluntary_csw > 0
    assert {p.name for p in Path("/tmp").glob("ktstr-chain-*")} <= leftovers


@pytest.mark.parametrize("w", [FutexFanOut(2, 64), WakeChain(3, WakeMechanism.PIPE, 0.0005),
                               EpollStorm(1, 2, 4)], ids=lambda w: w.name)
def test_thread_mode_workers_form_groups_too(w: WorkType) -> None:
    """Threads of one leader claim roles under the arena's thread lock: every role once."""
    assert w.group_size is not None
    reports = _run(w, workers=2 * w.group_size, clone_mode=CloneMode.THREAD)
    roles = sorted(int(r.metrics["group_role"]) for r in reports)
    assert roles == sorted(list(range(w.group_size)) * 2), roles
    assert sum(r.wake_latency_us.count for r in reports) > 0
