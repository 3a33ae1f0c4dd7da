"""The per-key rate limit is global: limiters in different workers (or hosts) share one bucket per key
in Postgres, leased in chunks, and count their refusals in it, so GET /api/v1/metrics/rate-limits shows
every worker's figures. Each ApiRateLimiter here stands for one worker with its own pool."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from api.context import ctx
from control.policy.rate_lease import FETCHES_PER_SECOND, LEASE_TTL_S
from control.services import ratelimit
from control.services.keys import create_client, create_key
from control.services.ratelimit import ApiRateLimiter, RateVerdict
from control.settings import load_settings
from control.store.db import create_pool
from tests.integration.conftest import Caller


def settings(default: int = 1000) -> Any:
    return load_settings(env={"MITTR_API__DEFAULT_RATE_LIMIT": str(default)})


class CountingPool:
    """The real pool, counting the statements the limiter sends (round trips to Postgres): takes in
    `calls`, refusal reports in `reports`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.calls, self.reports = pool, 0, 0

    async def fetchrow(self, *args: Any) -> Any:
        self.calls += 1
        return await self.pool.fetchrow(*args)

    async def execute(self, *args: Any) -> Any:
        self.reports += 1
        return await self.pool.execute(*args)


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


Limiter = Callable[..., ApiRateLimiter]


@pytest.fixture
async def limiter() -> AsyncIterator[Limiter]:
    """Makes workers' limiters; each is closed (its refusals reported) before the pools close."""
    made: list[ApiRateLimiter] = []

    def make(pool: Any, default: int = 1000, **kwargs: Any) -> ApiRateLimiter:
        made.append(ApiRateLimiter(pool, 0, settings(default), **kwargs))
        return made[-1]

    yield make
    for one in made:
        await one.aclose()


async def bucket(pool: asyncpg.Pool, key: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT tokens, granted, refused FROM api_rate_buckets WHERE bucket_key = $1", key)


def refused(verdicts: list[RateVerdict | None]) -> int:
    return sum(1 for v in verdicts if v is not None and not v.allowed)


def allowed(verdicts: list[RateVerdict | None]) -> int:
    return sum(1 for v in verdicts if v is not None and v.allowed)


async def test_two_workers_together_allow_the_limit_not_twice_it(pools: list[asyncpg.Pool],
                                                                limiter: Limiter) -> None:
    workers = [limiter(p) for p in pools]
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
    row = await bucket(pools[0], key)
    assert row is not None and row["tokens"] < 1
    for w in workers:
        await w.report_refusals()
    row = await bucket(pools[0], key)
    assert row is not None and row["refused"] == len(refused), "both workers' refusals, each counted once"


async def test_refused_requests_wait_locally_without_asking_postgres(pools: list[asyncpg.Pool], limiter: Limiter,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "REPORT_INTERVAL_S", 3600.0)   # only the next take reports here
    clock = Clock()
    counting = CountingPool(pools[0])
    worker = limiter(counting, clock=clock)
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
    row = await bucket(pools[0], key)
    assert row is not None and row["refused"] == refused(verdicts) + 20, "the take carried the refusals"
    assert counting.reports == 0


async def test_a_worker_that_only_refuses_reports_in_the_background(pools: list[asyncpg.Pool], limiter: Limiter,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "REPORT_INTERVAL_S", 0.05)
    counting = CountingPool(pools[0])
    worker = limiter(counting)
    keys = [uuid.uuid4() for _ in range(3)]
    verdicts = {k: [await worker.take(k, 1) for _ in range(8)] for k in keys}
    assert all(refused(v) >= 1 for v in verdicts.values()), verdicts
    takes = counting.calls
    # no request follows, so no take carries them: the reporter adds them (all keys pending in one statement)
    for _ in range(400):
        rows = await pools[1].fetch("SELECT bucket_key, refused FROM api_rate_buckets")
        if {r["bucket_key"]: r["refused"] for r in rows} == {k: refused(v) for k, v in verdicts.items()}:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"refusals not reported: {rows}")
    assert counting.reports >= 1 and counting.calls == takes     # refusals cost no take of their own
    reports = counting.reports
    await worker.report_refusals()
    assert counting.reports == reports, "nothing left to report: no statement"


async def test_a_failed_report_keeps_the_refusals_for_the_next(pools: list[asyncpg.Pool], limiter: Limiter,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "REPORT_INTERVAL_S", 3600.0)
    worker = limiter(pools[0])
    key = uuid.uuid4()
    n = refused([await worker.take(key, 1) for _ in range(5)])
    dead = await asyncpg.create_pool("postgresql://mittr@127.0.0.1:1/none", min_size=0, max_size=1)
    assert dead is not None
    try:
        worker.pool = dead
        await worker.report_refusals()                 # Postgres unreachable: logged, kept
    finally:
        worker.pool = pools[0]
        await dead.close()
    await worker.report_refusals()
    row = await bucket(pools[1], key)
    assert row is not None and row["refused"] == n >= 1


async def test_concurrent_requests_share_one_fetch_and_leases_expire(pools: list[asyncpg.Pool],
                                                                    limiter: Limiter) -> None:
    clock = Clock()
    counting = CountingPool(pools[0])
    worker = limiter(counting, clock=clock)
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


async def test_a_changed_limit_applies_to_the_shared_bucket(pools: list[asyncpg.Pool], limiter: Limiter) -> None:
    first, second = (limiter(p) for p in pools)
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


async def test_unlimited_keys_never_touch_the_table(app_client: Caller, pool: asyncpg.Pool, limiter: Limiter) -> None:
    free = await create_key(pool, uuid.UUID(app_client.client_id), "free", rate_limit=0)
    for _ in range(5):
        status, _, resp = await app_client.call("GET", "/api/v1/events", key=free.key)
        assert status == 200 and resp.get_first_header(b"x-ratelimit-limit") is None
    assert await bucket(pool, free.id) is None
    by_default = limiter(pool, default=0)
    assert await by_default.take(uuid.uuid4(), None) is None
    assert await pool.fetchval("SELECT count(*) FROM api_rate_buckets") == 0


async def test_another_worker_draining_the_key_makes_http_answer_429(app_client: Caller, pool: asyncpg.Pool,
                                                                     pools: list[asyncpg.Pool],
                                                                     limiter: Limiter) -> None:
    key = await create_key(pool, uuid.UUID(app_client.client_id), "shared", rate_limit=1)
    elsewhere = limiter(pools[1])
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


async def key_figures(app_client: Caller, key: str | None = None) -> dict[str, dict[str, Any]]:
    status, body, _ = await app_client.call("GET", "/api/v1/metrics/rate-limits", key=key)
    assert status == 200, body
    return {k["keyPrefix"]: k for k in body["apiKeys"]}


async def test_metrics_count_every_workers_refusals_for_the_tenants_keys_only(
        app_client: Caller, pool: asyncpg.Pool, pools: list[asyncpg.Pool], limiter: Limiter) -> None:
    mine = await create_key(pool, uuid.UUID(app_client.client_id), "tight", rate_limit=2)
    other_tenant = await create_client(pool, "tenant-b")
    theirs = await create_key(pool, other_tenant["id"], "theirs", rate_limit=1)
    their_admin = await create_key(pool, other_tenant["id"], "admin")
    workers = [limiter(p) for p in pools]
    elsewhere = [refused([await w.take(mine.id, 2) for _ in range(6)]) for w in workers]
    their_refused = refused([await workers[1].take(theirs.id, 1) for _ in range(4)])
    for w in workers:
        await w.report_refusals()                  # as their reporters do within a second
    # and the answering worker's own refusals, not reported yet: it adds them before reading
    here = [(await app_client.call("GET", "/api/v1/events", key=mine.key))[0] for _ in range(4)]
    assert here.count(429) >= 1 and all(n >= 1 for n in elsewhere), (here, elsewhere)

    figures = await key_figures(app_client)
    assert set(figures) == {app_client.key[:8], mine.key_prefix}, "another tenant's keys are not listed"
    assert figures[mine.key_prefix] == {"keyId": str(mine.id), "name": "tight", "keyPrefix": mine.key_prefix,
                                    "limitPerSec": 2, "tokens": figures[mine.key_prefix]["tokens"],
                                    "throttled": sum(elsewhere) + here.count(429)}
    assert 0 <= figures[mine.key_prefix]["tokens"] <= 2
    theirs_seen = (await key_figures(app_client, their_admin.key))[theirs.key_prefix]
    assert theirs_seen["throttled"] == their_refused >= 1 and theirs_seen["limitPerSec"] == 1


async def test_metrics_tokens_are_the_shared_bucket_refilled_by_the_database_clock(
        app_client: Caller, pool: asyncpg.Pool, pools: list[asyncpg.Pool], limiter: Limiter) -> None:
    key = await create_key(pool, uuid.UUID(app_client.client_id), "k", rate_limit=4)
    assert (await limiter(pools[1]).take(key.id, 4)).allowed     # type: ignore[union-attr]
    set_bucket = "UPDATE api_rate_buckets SET tokens = $2, refilled_at = clock_timestamp() + $3 WHERE bucket_key = $1"
    # last taken "in the future" (a clock ahead elsewhere): nothing refilled yet, as rate_bucket_take counts it
    await pool.execute(set_bucket, key.id, 0.25, timedelta(hours=1))
    assert (await key_figures(app_client))[key.key_prefix]["tokens"] == 0.25
    await pool.execute(set_bucket, key.id, 0.0, timedelta(hours=-1))
    assert (await key_figures(app_client))[key.key_prefix]["tokens"] == 4.0, "refilled, up to one second's burst"
    await pool.execute(set_bucket, key.id, 0.0, timedelta(seconds=-0.5))
    assert 2.0 <= (await key_figures(app_client))[key.key_prefix]["tokens"] <= 4.0


async def test_metrics_for_unused_and_unlimited_keys(app_client: Caller, pool: asyncpg.Pool) -> None:
    client_id = uuid.UUID(app_client.client_id)
    idle = await create_key(pool, client_id, "idle", rate_limit=5)
    by_default = await create_key(pool, client_id, "default")
    free = await create_key(pool, client_id, "free", rate_limit=0)
    assert (await app_client.call("GET", "/api/v1/events", key=free.key))[0] == 200
    figures = await key_figures(app_client)
    assert [figures[k.key_prefix]["limitPerSec"] for k in (idle, by_default, free)] == [5, 1000, 0]
    assert figures[idle.key_prefix]["tokens"] == 5.0 and figures[idle.key_prefix]["throttled"] == 0
    assert figures[by_default.key_prefix]["tokens"] == 1000.0 and figures[by_default.key_prefix]["throttled"] == 0
    assert figures[free.key_prefix]["tokens"] is None and figures[free.key_prefix]["throttled"] is None
