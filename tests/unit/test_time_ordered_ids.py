"""Event, task, attempt and audit ids: RFC 9562 UUIDv7s, ordered by the millisecond they were made
and, within one process, by the order they were made."""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.services import events
from control.services.events import time_ordered_ids


@given(st.integers(min_value=1, max_value=300))
def test_every_id_is_a_version_7_uuid_of_now(n: int) -> None:
    before = time.time_ns() // 1_000_000
    ids = time_ordered_ids(n)
    after = time.time_ns() // 1_000_000
    assert len(ids) == n == len(set(ids))
    for i in ids:
        assert isinstance(i, uuid.UUID)
        assert i.version == 7 and i.variant == uuid.RFC_4122
        assert before <= i.int >> 80 <= after, "the first 48 bits are the Unix time in milliseconds"
        again = uuid.UUID(str(i))
        assert again == i and hash(again) == hash(i), "interchangeable with the standard type as a key"


def test_ids_made_later_sort_after_earlier_ones() -> None:
    first = time_ordered_ids(5)
    time.sleep(0.002)
    second = time_ordered_ids(5)
    assert max(first) < min(second)
    assert max(str(i) for i in first) < min(str(i) for i in second), "also as text"


def test_the_random_bits_vary() -> None:
    ids = time_ordered_ids(1000)
    low = {i.int & ((1 << 62) - 1) for i in ids}
    assert len(low) == 1000
    versions_and_variants = {(i.int >> 76) & 0xF for i in ids} | {100 + ((i.int >> 62) & 0x3) for i in ids}
    assert versions_and_variants == {7, 102}


def test_ids_of_one_process_only_go_up_even_within_a_millisecond() -> None:
    """Rows one process writes one after another (audit entries of consecutive changes) sort by id
    in the order they were made: with random bits after the millisecond, two ids made in the same
    millisecond came out in either order."""
    made = [time_ordered_ids(1)[0] for _ in range(5000)] + time_ordered_ids(300) + time_ordered_ids(1)
    assert made == sorted(made) and len(set(made)) == len(made)
    assert [str(i) for i in made] == sorted(str(i) for i in made), "also as text"
    same_ms = [i for i in made if i.int >> 80 == made[0].int >> 80]
    assert len(same_ms) > 1, "several ids shared a millisecond, and still came out in order"


def test_ids_follow_the_clock_even_when_it_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Monotonic within a millisecond, never at the price of a made-up time: an id made after the
    clock stepped back carries the clock's millisecond."""
    now = time.time_ns()
    monkeypatch.setattr(events.time, "time_ns", lambda: now + 5_000_000_000)
    ahead = time_ordered_ids(3)
    monkeypatch.setattr(events.time, "time_ns", lambda: now)
    back = time_ordered_ids(3)
    assert {i.int >> 80 for i in ahead} == {now // 1_000_000 + 5000}
    assert {i.int >> 80 for i in back} == {now // 1_000_000}
    assert back == sorted(back) and ahead == sorted(ahead)


def test_a_millisecond_whose_counter_runs_out_starts_a_fresh_one(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time_ns()
    monkeypatch.setattr(events.time, "time_ns", lambda: now)
    monkeypatch.setattr(events, "_clock", [now // 1_000_000, (1 << events._COUNTER_BITS) - 3])
    ids = time_ordered_ids(10)
    assert {i.int >> 80 for i in ids} == {now // 1_000_000} and ids == sorted(ids) and len(set(ids)) == 10
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
