"""Per-API-key request rate limit, kept in memory by each API worker.

Each key gets a token bucket (lazy refill, no timers) allowing its `rate_limit` requests per second,
or `api.default_rate_limit` when the key has none; the burst is one second's worth. With W API
workers each worker enforces 1/W of the limit (connections are spread across workers), so no
shared state is needed on the request path. A limit of 0 means unlimited.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

from control.policy.token_bucket import TokenBucket
from control.settings import Settings

MAX_TRACKED_KEYS = 100_000


def api_workers(settings: Settings) -> int:
    """How many API workers share a key's limit: server.workers (0 = one per core, at most 4,
    as `mittr serve` resolves it)."""
    return int(settings.server["workers"]) or min(4, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class RateVerdict:
    allowed: bool
    limit: int            # the key's requests per second
    remaining: int        # requests that could be made right now
    reset: int            # unix seconds when the bucket is full again
    retry_after: int      # seconds to wait before the next request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset)}


class ApiRateLimiter:
    def __init__(self, pool: Any = None, partitions: int = 0, settings: Settings | None = None) -> None:
        self.default_limit = int(settings.api["default_rate_limit"]) if settings else 0
        self.workers = api_workers(settings) if settings else 1
        self._buckets: dict[object, tuple[int, TokenBucket]] = {}
        self._refused: dict[object, int] = {}

    def state(self, key: object, now: float | None = None) -> tuple[float, int] | None:
        """(tokens, requests refused) for a key as this worker sees it, scaled to the whole key;
        None while this worker has not seen the key."""
        entry = self._buckets.get(key)
        if entry is None:
            return None
        limit, bucket = entry
        now = time.monotonic() if now is None else now
        return min(float(limit), bucket.tokens(now) * self.workers), self._refused.get(key, 0)

    def take(self, key: object, limit: int | None, now: float | None = None,
             wall: float | None = None) -> RateVerdict | None:
        """Take one request from `key`'s bucket; None when the key is unlimited."""
        per_second = self.default_limit if limit is None else limit
        if per_second <= 0:
            return None
        now = time.monotonic() if now is None else now
        wall = time.time() if wall is None else wall
        share = per_second / self.workers
        entry = self._buckets.get(key)
        if entry is None:
            if len(self._buckets) >= MAX_TRACKED_KEYS:
                self._buckets.clear()
                self._refused.clear()
            entry = self._buckets[key] = (per_second, TokenBucket(share, max(1.0, share), now))
        elif entry[0] != per_second:      # the key's limit was changed: keep what it had earned
            entry[1].set_rate(share, max(1.0, share), now)
            entry = self._buckets[key] = (per_second, entry[1])
        bucket = entry[1]
        allowed = bucket.try_take(now)
        if not allowed:
            self._refused[key] = self._refused.get(key, 0) + 1
        tokens = bucket.tokens(now)
        remaining = min(per_second, math.floor(tokens * self.workers))
        reset = math.ceil(wall + (bucket.burst - tokens) / bucket.rate)
        retry_after = 0 if allowed else max(1, math.ceil(bucket.wait_time(now)))
        return RateVerdict(allowed, per_second, remaining, reset, retry_after)
