"""Statistics, the stats WebSocket and rate-limit figures, through the real API on a real database."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import orjson

from control.policy.token_bucket import TokenBucket
from engine.dispatch import Target
from engine.policy.breaker import BreakerState, CircuitBreaker
from engine.stats import EndpointLimiterStats, ShardStats, limiter_stats, report
from tests.integration.conftest import Caller


async def make_endpoint(c: Caller, **extra: Any) -> str:
    status, body, _ = await c.call("POST", "/api/v1/endpoints", {"url": "https://receiver.example.com/h",
                                                                 "eventTypes": ["order.*"], **extra})
    assert status == 201, body
    return str(body["id"])


async def send(c: Caller) -> None:
    status, body, _ = await c.call("POST", "/api/v1/events", {"eventType": "order.created", "payload": {"a": 1}},
                                   {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, body


def shard(index: int, lo: int, hi: int, **kw: int) -> ShardStats:
    return ShardStats(index, lo, hi, "host:abc:0", kw.get("epoch", 7), kw.get("buffered", 3), kw.get("in_flight", 2),
                      kw.get("delivered", 40))


async def test_snapshot_counts_queue_by_state_and_shows_fresh_shards(app_client: Caller, pool: asyncpg.Pool,
                                                                     second_key: str) -> None:
    await make_endpoint(app_client)
    for _ in range(3):
        await send(app_client)     # no shard runs here: the deliveries stay queued
    await report(pool, shard(0, 0, 2048), [])
    await report(pool, shard(1, 2048, 4096, buffered=9), [])
    await pool.execute("UPDATE shard_stats SET updated_at = now() - interval '1 minute' WHERE slot = '2048-4096'")
    status, body, _ = await app_client.call("GET", "/api/v1/stats")
    assert status == 200, body
    assert body["queue"] == {"queued": 3, "delivering": 0, "failed": 0}
    assert body["queueDepth"] == 3 and body["inFlight"] == 0
    assert body["deliveredPerSec"] == 0 and body["failedPerSec"] == 0
    assert 60 <= body["lastMinute"]["windowSeconds"] <= 121
    assert body["shards"] == [{"index": 0, "range": "0-2048", "epoch": 7, "buffered": 3, "inFlight": 2,
                               "deliveredTotal": 40, "updatedAt": body["shards"][0]["updatedAt"]}], \
        "a shard that stopped reporting is not shown"
    status, other, _ = await app_client.call("GET", "/api/v1/stats", key=second_key)
    assert status == 200 and other["queue"]["queued"] == 0, "another tenant sees only its own queue"
    status, _, _ = await app_client.call("GET", "/api/v1/stats", key="mtr_bad")
    assert status == 401


async def test_stats_websocket_pushes_every_second(app_client: Caller) -> None:
    await make_endpoint(app_client)
    await send(app_client)
    ws = app_client.client.websocket_connect(f"/api/v1/stats/ws?key={app_client.key}")
    async with ws:
        started = time.perf_counter()
        got = []
        while time.perf_counter() - started < 2.5:
            try:
                msg = await asyncio.wait_for(ws.receive_text(), 2.5 - (time.perf_counter() - started))
            except TimeoutError:
                break
            got.append(orjson.loads(msg))
    await app_client.client.websocket_all_closed()
    assert len(got) >= 2, f"{len(got)} pushes in 2.5 s"
    assert all(g["queue"]["queued"] == 1 and "shards" in g for g in got)


async def test_stats_websocket_refuses_a_bad_key_with_1008(app_client: Caller) -> None:
    for path in ("/api/v1/stats/ws?key=mtr_nope", "/api/v1/stats/ws"):
        ws = app_client.client.websocket_connect(path)
        await ws.send({"type": "websocket.connect"})
        assert (await ws.receive())["type"] == "websocket.accept"
        error = await ws.receive_json()
        assert error["code"] == "UNAUTHORIZED"
        closing = await ws.receive()
        assert closing["type"] == "websocket.close" and closing["code"] == 1008
    await app_client.client.websocket_all_closed()


async def test_stats_ws_is_documented_and_plain_http_gets_426(app_client: Caller) -> None:
    status, doc, _ = await app_client.call("GET", "/openapi.json")
    assert status == 200 and "get" in doc["paths"]["/api/v1/stats/ws"]
    status, body, _ = await app_client.call("GET", "/api/v1/stats/ws")
    assert status == 426 and body["code"] == "UPGRADE_REQUIRED"


async def test_rate_limit_figures_for_keys_and_endpoints(app_client: Caller, pool: asyncpg.Pool,
                                                         second_key: str) -> None:
    limited = await make_endpoint(app_client, rateLimitPerSec=50)
    open_ = await make_endpoint(app_client)
    await report(pool, shard(0, 0, 4096), [EndpointLimiterStats(uuid.UUID(limited), 50, 12.5, 9, "open")])
    status, body, _ = await app_client.call("GET", "/api/v1/metrics/rate-limits")
    assert status == 200, body
    [key] = body["apiKeys"]
    assert key["limitPerSec"] == 1000 and key["keyPrefix"] == app_client.key[:8]
    assert 0 < key["tokens"] <= 1000, "this worker has served the key: its bucket is live"
    by_id = {e["endpointId"]: e for e in body["endpoints"]}
    assert by_id[limited] == {"endpointId": limited, "url": "https://receiver.example.com/h", "limitPerSec": 50,
                              "tokens": 12.5, "throttled": 9, "circuitState": "open",
                              "reportedAt": by_id[limited]["reportedAt"]}
    assert by_id[open_]["limitPerSec"] == 0 and by_id[open_]["tokens"] is None
    assert by_id[open_]["circuitState"] == "closed" and by_id[open_]["reportedAt"] is None

    status, one, _ = await app_client.call("GET", f"/api/v1/metrics/rate-limits/endpoint/{limited}")
    assert status == 200 and one == by_id[limited]
    await pool.execute("UPDATE endpoint_limiter_stats SET updated_at = now() - interval '1 hour'")
    status, one, _ = await app_client.call("GET", f"/api/v1/metrics/rate-limits/endpoint/{limited}")
    assert status == 200 and one["tokens"] is None and one["throttled"] is None, "stale figures are not shown"
    for key_, path in ((second_key, f"/api/v1/metrics/rate-limits/endpoint/{limited}"),
                       (None, f"/api/v1/metrics/rate-limits/endpoint/{uuid.uuid4()}"),
                       (None, "/api/v1/metrics/rate-limits/endpoint/nope")):
        status, out, _ = await app_client.call("GET", path, key=key_)
        assert status == 404 and out["code"] == "NOT_FOUND"
    status, other, _ = await app_client.call("GET", "/api/v1/metrics/rate-limits", key=second_key)
    assert status == 200 and other["endpoints"] == []


def test_limiter_stats_report_limited_throttled_or_tripped_endpoints_only() -> None:
    now = 1000.0
    limited = Target("a", uuid.uuid4(), bucket=TokenBucket(20, 2, now - 10), throttled=4)
    tripped = Target("b", uuid.uuid4(), breaker=CircuitBreaker(3, 1000, BreakerState.OPEN, 1))
    quiet = Target("c", uuid.uuid4(), breaker=CircuitBreaker(3, 1000))
    direct = Target("https://x.example", None, bucket=TokenBucket(5, 1, now))
    got = limiter_stats([limited, tripped, quiet, direct], now)
    assert got == [EndpointLimiterStats(limited.endpoint_id, 20, 2.0, 4, "closed"),  # type: ignore[arg-type]
                   EndpointLimiterStats(tripped.endpoint_id, 0, None, 0, "open")]  # type: ignore[arg-type]


async def test_key_refusals_are_counted(app_client: Caller, pool: asyncpg.Pool) -> None:
    from control.services.keys import create_key

    tight = await create_key(pool, uuid.UUID(app_client.client_id), "tight", rate_limit=2)
    codes = [(await app_client.call("GET", "/api/v1/events", key=tight.key))[0] for _ in range(6)]
    refused = codes.count(429)
    assert refused >= 3, codes
    status, body, _ = await app_client.call("GET", "/api/v1/metrics/rate-limits")
    assert status == 200
    [mine] = [k for k in body["apiKeys"] if k["keyPrefix"] == tight.key[:8]]
    assert mine["limitPerSec"] == 2 and mine["throttled"] == refused
