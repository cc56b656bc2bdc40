"""Unit tests for the group arena and the fan-out / herd / epoll / chain wake types."""

from __future__ import annotations

import ctypes

import pytest

from ktstr.errors import ConfigError, SystemError_
from ktstr.work.pairing import MAX_GROUP_SIZE, GroupArena, PairArena, Seat

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
