"""Event, task and attempt ids: RFC 9562 UUIDv7s, ordered by the millisecond they were made."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

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
