"""The per-key rate limit is global: limiters in different workers (or hosts) share one bucket per key
in Postgres, leased in chunks. Each ApiRateLimiter here stands for one worker with its own pool."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from api.context import ctx
from control.policy.rate_lease import FETCHES_PER_SECOND, LEASE_TTL_S
from control.services.keys import create_key
from control.services.ratelimit import ApiRateLimiter, RateVerdict
from control.settings import load_settings
from control.store.db import create_pool
from tests.integration.conftest import Caller


def settings(default: int = 1000) -> Any:
    return load_settings(env={"MITTR_API__DEFAULT_RATE_LIMIT": str(default)})


class CountingPool:
    """The real pool, counting the statements the limiter sends (round trips to Postgres)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.calls = pool, 0

    async def fetchrow(self, *args: Any) -> Any:
        self.calls += 1
        return await self.pool.fetchrow(*args)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pools(db_url: str) -> AsyncIterator[list[asyncpg.Pool]]:
    """Two independent pools on one database: two workers, as on two hosts."""
    made = [await create_pool(db_url, 1, 4) for _ in range(2)]
    try:
        yield made
    finally:
        for p in made:
            await p.close()


async def bucket(pool: asyncpg.Pool, key: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT tokens, granted FROM api_rate_buckets WHERE bucket_key = $1", key)


def allowed(verdicts: list[RateVerdict | None]) -> int:
    return sum(1 for v in verdicts if v is not None and v.allowed)


async def test_two_workers_together_allow_the_limit_not_twice_it(pools: list[asyncpg.Pool]) -> None:
    workers = [ApiRateLimiter(p, 0, settings()) for p in pools]
    key, limit, each = uuid.uuid4(), 10, 30
    started = time.monotonic()
    results = await asyncio.gather(*(w.take(key, limit) for w in workers for _ in range(each)))
    elapsed = time.monotonic() - started
    # The bucket holds one second's worth and refills at the limit while the burst runs; each worker
    # may hold one chunk (max(1, limit // 10) = 1) beyond it (control/policy/rate_lease.py).
    slack = len(workers) * max(1, limit // FETCHES_PER_SECOND)
    total = allowed(results)
    assert limit <= total <= limit + math.ceil(limit * elapsed) + slack, (total, elapsed)
    refused = [v for v in results if v is not None and not v.allowed]
    assert refused and all(v.retry_after >= 1 and v.remaining == 0 and v.limit == limit for v in refused)
    assert sum(w.state(key)[1] for w in workers) == len(refused)  # type: ignore[index]
    row = await bucket(pools[0], key)
    assert row is not None and row["tokens"] < 1


async def test_refused_requests_wait_locally_without_asking_postgres(pools: list[asyncpg.Pool]) -> None:
    clock = Clock()
    counting = CountingPool(pools[0])
    worker = ApiRateLimiter(counting, 0, settings(), clock=clock)
    key = uuid.uuid4()
    verdicts = [await worker.take(key, 2) for _ in range(10)]
    assert 2 <= allowed(verdicts) < 10 and not verdicts[-1].allowed  # type: ignore[union-attr]
    asked = counting.calls
    assert [(await worker.take(key, 2)).allowed for _ in range(20)] == [False] * 20  # type: ignore[union-attr]
    assert counting.calls == asked, "an empty bucket is remembered until a token can exist"
    clock.now += 1.0                                    # a whole second later (and Postgres refilled too)
    await asyncio.sleep(0.6)
    later = await worker.take(key, 2)
    assert later is not None and later.allowed and counting.calls == asked + 1


async def test_concurrent_requests_share_one_fetch_and_leases_expire(pools: list[asyncpg.Pool]) -> None:
    clock = Clock()
    counting = CountingPool(pools[0])
    worker = ApiRateLimiter(counting, 0, settings(), clock=clock)
    key = uuid.uuid4()
    burst = await asyncio.gather(*(worker.take(key, 1000) for _ in range(20)))
    assert allowed(burst) == 20
    # one fetch served all 20: the others queued behind it, and it was sized to the demand seen
    assert counting.calls == 1
    row = await bucket(pools[0], key)
    assert row is not None and row["granted"] == 20 and 979 <= row["tokens"] <= 1000
    assert (await worker.take(key, 1000)).allowed and counting.calls == 2   # type: ignore[union-attr]
    row = await bucket(pools[0], key)
    assert row is not None and row["granted"] == 21     # a chunk for the 21 requests seen: 20 left over
    assert (await worker.take(key, 1000)).allowed and counting.calls == 2   # type: ignore[union-attr]
    clock.now += LEASE_TTL_S                            # the 19 leased tokens nobody spent are void now
    assert (await worker.take(key, 1000)).allowed and counting.calls == 3   # type: ignore[union-attr]


async def test_a_changed_limit_applies_to_the_shared_bucket(pools: list[asyncpg.Pool]) -> None:
    first, second = (ApiRateLimiter(p, 0, settings()) for p in pools)
    key = uuid.uuid4()
    assert (await first.take(key, 50)).allowed                                   # type: ignore[union-attr]
    started = time.monotonic()
    lowered = [await second.take(key, 2) for _ in range(10)]
    elapsed = time.monotonic() - started
    assert all(v is not None and v.limit == 2 for v in lowered)
    # lowered to 2: the ~49 tokens the bucket had are capped at the new burst of 2
    assert 2 <= allowed(lowered) <= 2 + math.ceil(2 * elapsed), (lowered, elapsed)
    raised = await second.take(key, 1000)              # raised: no longer held back by the old wait
    assert raised is not None and raised.limit == 1000
    await asyncio.sleep(0.01)                          # at 1000/s, Postgres has refilled ~10 tokens
    again = await first.take(key, 1000)
    assert again is not None and again.allowed and again.limit == 1000


async def test_unlimited_keys_never_touch_the_table(app_client: Caller, pool: asyncpg.Pool) -> None:
    free = await create_key(pool, uuid.UUID(app_client.client_id), "free", rate_limit=0)
    for _ in range(5):
        status, _, resp = await app_client.call("GET", "/api/v1/events", key=free.key)
        assert status == 200 and resp.get_first_header(b"x-ratelimit-limit") is None
    assert await bucket(pool, free.id) is None
    by_default = ApiRateLimiter(pool, 0, settings(default=0))
    assert await by_default.take(uuid.uuid4(), None) is None
    assert await pool.fetchval("SELECT count(*) FROM api_rate_buckets") == 0


async def test_another_worker_draining_the_key_makes_http_answer_429(app_client: Caller, pool: asyncpg.Pool,
                                                                     pools: list[asyncpg.Pool]) -> None:
    key = await create_key(pool, uuid.UUID(app_client.client_id), "shared", rate_limit=1)
    elsewhere = ApiRateLimiter(pools[1], 0, settings())
    assert allowed([await elsewhere.take(key.id, 1) for _ in range(3)]) >= 1     # another host spends it
    status, err, resp = await app_client.call("GET", "/api/v1/events", key=key.key)
    assert status == 429 and err["code"] == "RATE_LIMITED", err
    assert int(resp.get_first_header(b"retry-after")) >= 1
    assert resp.get_first_header(b"x-ratelimit-limit") == b"1"
    assert resp.get_first_header(b"x-ratelimit-remaining") == b"0"


async def test_postgres_unreachable_during_a_fetch_answers_503_not_500(app_client: Caller) -> None:
    dead = await asyncpg.create_pool("postgresql://mittr@127.0.0.1:1/none", min_size=0, max_size=1)
    assert dead is not None
    try:
        ctx()._services[ApiRateLimiter] = ApiRateLimiter(dead, 0, settings())
        status, err, resp = await app_client.call("GET", "/api/v1/events")
        assert status == 503 and err["code"] == "UNAVAILABLE", err
        assert resp.get_first_header(b"retry-after") == b"1"
    finally:
        await dead.close()
