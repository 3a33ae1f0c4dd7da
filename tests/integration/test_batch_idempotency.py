"""Idempotency under concurrency: 20 simultaneous creates with one key store exactly one event."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

from tests.integration.conftest import Caller

WAYS = 20


async def test_twenty_concurrent_single_creates_store_one_event(app_client: Caller, pool: Any) -> None:
    key = f"race-{uuid.uuid4()}"
    body = {"destination": "https://api.example.com/webhooks", "payload": {"n": 1}}
    results = await asyncio.gather(*(
        app_client.call("POST", "/api/v1/events", body, {"X-Idempotency-Key": key}) for _ in range(WAYS)))
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {201: 1, 409: WAYS - 1}, statuses
    [winner] = [b for s, b, _ in results if s == 201]
    for status, err, _ in results:
        if status == 409:
            assert err["code"] == "CONFLICT" and err["eventId"] == winner["id"]
    assert await pool.fetchval("SELECT count(*) FROM events") == 1
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1
    assert await pool.fetchval("SELECT sum(events) FROM client_usage") == 1


async def test_twenty_concurrent_batches_with_the_same_keys_store_one_batch(app_client: Caller, pool: Any) -> None:
    keys = [f"race-{i}-{uuid.uuid4()}" for i in range(5)]
    batch = {"events": [{"idempotencyKey": k, "destination": f"https://h{i}.example.com/in", "payload": {"i": i}}
                        for i, k in enumerate(keys)]}
    results = await asyncio.gather(*(app_client.call("POST", "/api/v1/events/batch", batch) for _ in range(WAYS)))
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {201: 1, 409: WAYS - 1}, statuses
    for status, err, _ in results:
        if status == 409:
            assert err["code"] == "DUPLICATE_EVENT" and err["duplicateKeys"] == sorted(keys)
    assert await pool.fetchval("SELECT count(*) FROM events") == len(keys)
    assert await pool.fetchval("SELECT count(*) FROM tasks") == len(keys)
    assert await pool.fetchval("SELECT sum(events) FROM client_usage") == len(keys)


async def test_overlapping_concurrent_batches_never_store_a_key_twice(app_client: Caller, pool: Any) -> None:
    """Batches sharing one key: whichever wins, each key is stored once and losers store nothing."""
    shared = f"shared-{uuid.uuid4()}"

    def batch(n: int) -> dict[str, Any]:
        return {"events": [{"idempotencyKey": k, "destination": "https://api.example.com/in", "payload": {}}
                           for k in (shared, f"own-{n}-{uuid.uuid4()}")]}

    results = await asyncio.gather(*(app_client.call("POST", "/api/v1/events/batch", batch(n))
                                     for n in range(WAYS)))
    statuses = Counter(status for status, _, _ in results)
    assert statuses == {201: 1, 409: WAYS - 1}, statuses
    assert await pool.fetchval("SELECT count(*) FROM events") == 2
    assert await pool.fetchval("SELECT count(*) FROM events WHERE idempotency_key = $1", shared) == 1
