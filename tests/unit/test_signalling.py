"""NOTIFY payloads: what the API writes, a shard reads back exactly; anything else is ignored."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from control.signalling import (
    parse_release_payload,
    parse_work_payload,
    release_payload,
    work_payload,
    work_payloads,
)


@settings(max_examples=200, deadline=None)
@given(partition=st.integers(0, 65_535), key=st.text(min_size=1, max_size=60),
       ids=st.lists(st.uuids(), max_size=5))
def test_release_payload_round_trips(partition: int, key: str, ids: list[uuid.UUID]) -> None:
    assert parse_release_payload(release_payload(partition, key, ids)) == (partition, key, ids)


def test_malformed_release_payloads_are_ignored() -> None:
    for bad in ("", "7", "x|https://a:443|", "7||", f"7|https://a:443|{uuid.uuid4()},nope"):
        assert parse_release_payload(bad) is None, bad


def test_work_payload_round_trips_and_skips_junk() -> None:
    assert parse_work_payload(work_payload([5, 1, 5, 3])) == [1, 3, 5]
    assert parse_work_payload("1, x,,2") == [1, 2]


@settings(max_examples=100, deadline=None)
@given(parts=st.sets(st.integers(0, 65_535), max_size=5_000), limit=st.integers(20, 8_000))
def test_work_payloads_fit_and_cover(parts: set[int], limit: int) -> None:
    payloads = work_payloads(parts, limit)
    assert all(len(p) <= limit for p in payloads)
    got = [x for p in payloads for x in parse_work_payload(p)]
    assert got == sorted(parts)


def test_all_partitions_fit_in_a_few_notifies() -> None:
    assert len(work_payloads(range(4096))) == 3
