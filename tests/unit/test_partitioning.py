"""Partitioning: stable hashing, shard ranges and target keys."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.policy.partitioning import partition_for, shard_for, shard_ranges, stable_hash, target_key


def test_stable_hash_is_pinned() -> None:
    # Golden values: these are stored in databases, so they must never change.
    assert stable_hash("ep_123") == 15970847941457354701
    assert stable_hash("") == 16476032584258269876
    assert partition_for("ep_123", 4096) == 4045
    digest = hashlib.blake2b("ép".encode(), digest_size=8).digest()
    assert stable_hash("ép") == int.from_bytes(digest, "big")


@settings(max_examples=200, deadline=None)
@given(key=st.text(), partitions=st.integers(1, 10_000))
def test_partition_in_range(key: str, partitions: int) -> None:
    p = partition_for(key, partitions)
    assert 0 <= p < partitions
    assert 0 <= stable_hash(key) < 2**64


def test_partitions_spread() -> None:
    counts = [0] * 16
    for i in range(16_000):
        counts[partition_for(f"endpoint-{i}", 16)] += 1
    assert min(counts) > 800 and max(counts) < 1_200


def test_shard_ranges_examples() -> None:
    assert shard_ranges(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert shard_ranges(4096, 1) == [(0, 4096)]
    assert shard_ranges(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]
    with pytest.raises(ValueError):
        shard_ranges(10, 0)


@settings(max_examples=200, deadline=None)
@given(partitions=st.integers(1, 5_000), shards=st.integers(1, 300))
def test_shard_ranges_cover_exactly(partitions: int, shards: int) -> None:
    ranges = shard_ranges(partitions, shards)
    assert len(ranges) == shards
    assert ranges[0][0] == 0 and ranges[-1][1] == partitions
    for (_, hi), (lo, _) in itertools.pairwise(ranges):
        assert hi == lo  # contiguous, no gaps or overlaps
    sizes = [hi - lo for lo, hi in ranges]
    assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1
    # shard_for agrees with the ranges for every partition.
    for shard, (lo, hi) in enumerate(ranges):
        for partition in {lo, hi - 1, (lo + hi) // 2} if hi > lo else set():
            assert shard_for(partition, partitions, shards) == shard


def test_shard_for_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        shard_for(10, 10, 2)
    with pytest.raises(ValueError):
        shard_for(-1, 10, 2)


def test_target_key() -> None:
    assert target_key("ep_1", "https://ignored.example") == "ep_1"
    assert target_key(None, "HTTPS://Example.COM/path?q=1") == "https://example.com:443"
    assert target_key("", "http://example.com") == "http://example.com:80"
    assert target_key(None, "http://user:pw@example.com:8080/a") == "http://example.com:8080"
    assert target_key(None, "https://example.com:443/x") == target_key(None, "https://EXAMPLE.com/y")
    assert target_key(None, "http://[::1]:8080/x") == "http://[::1]:8080"


@pytest.mark.parametrize(
    "destination", [None, "", "/relative/path", "example.com", "https://example.com:99999/", "ftp://host/"]
)
def test_target_key_rejects(destination: str | None) -> None:
    with pytest.raises(ValueError):
        target_key(None, destination)
