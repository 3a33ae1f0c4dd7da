"""Map delivery targets to hash partitions and partitions to shards.

The hash must agree across processes, restarts and hosts (Python's ``hash()`` is salted
per process), because partitions are stored in the database and shards are assigned
contiguous partition ranges.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def stable_hash(key: str) -> int:
    """64-bit hash of ``key`` that never changes between runs or machines."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def partition_for(key: str, partitions: int) -> int:
    """Partition (0..partitions-1) that owns ``key``."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    return stable_hash(key) % partitions


def shard_ranges(partitions: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) partition ranges per shard; sizes differ by at most one."""
    if partitions < 0:
        raise ValueError("partitions must be >= 0")
    if shards < 1:
        raise ValueError("shards must be >= 1")
    size, extra = divmod(partitions, shards)
    ranges: list[tuple[int, int]] = []
    lo = 0
    for shard in range(shards):
        hi = lo + size + (1 if shard < extra else 0)
        ranges.append((lo, hi))
        lo = hi
    return ranges


def shard_for(partition: int, partitions: int, shards: int) -> int:
    """Shard whose ``shard_ranges`` range holds ``partition`` (computed in O(1))."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} outside 0..{partitions - 1}")
    size, extra = divmod(partitions, shards)
    boundary = extra * (size + 1)  # the first `extra` shards hold size+1 partitions
    if partition < boundary:
        return partition // (size + 1)
    return extra + (partition - boundary) // size


def target_key(endpoint_id: str | None, destination: str | None) -> str:
    """Key that groups deliveries sharing rate limits, breaker and ordering.

    An endpoint's id, or for direct (destination) deliveries the URL's origin
    ``scheme://host:port``, lower-cased with the default port made explicit.
    """
    if endpoint_id:
        return endpoint_id
    if not destination:
        raise ValueError("either an endpoint id or a destination URL is required")
    parts = urlsplit(destination.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname  # lower-cased, brackets of IPv6 literals removed
    if not scheme or not host:
        raise ValueError(f"destination is not an absolute URL: {destination!r}")
    port = parts.port  # raises ValueError for a malformed port
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
        if port is None:
            raise ValueError(f"destination has no port and no default for scheme {scheme!r}")
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
