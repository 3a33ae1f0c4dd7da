"""Observability end to end on a real `mittr serve`: the rollups the shards' writers keep agree with
the raw attempts, the stats WebSocket pushes through granian, /metrics adds up every process, and
poll mode works over real HTTP."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from control.services.rollups import BUCKETS, CATEGORIES, LATENCY_BOUNDS_MS, latency_bucket, percentile
from tests.support.server import Api, MittrServer, free_port
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e


def z(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


async def endpoint(api: Api, url: str, event_type: str, **extra: Any) -> str:
    status, body = await api.call("POST", "/api/v1/endpoints", {
        "url": url, "eventTypes": [event_type], "retryBackoffMs": 50, "retryBackoffMult": 1.0, **extra})
    assert status == 201, body
    return str(body["id"])


async def send(api: Api, event_type: str, n: int) -> str:
    status, body = await api.call("POST", "/api/v1/events", {"eventType": event_type, "payload": {"n": n}},
                                  {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, body
    return str(body["id"])


def hist_of(durations: list[int]) -> list[int]:
    hist = [0] * BUCKETS
    for d in durations:
        hist[latency_bucket(d)] += 1
    return hist


def raw_category(outcome: str, category: str | None) -> str:
    if outcome == "timeout":
        return "timeout"
    return category if category in CATEGORIES else "other"


async def test_analytics_agree_with_the_raw_attempts(api: Api, server: MittrServer, sink: Sink) -> None:
    sink.script_body("/flaky", lambda n, _body: 500 if n == 1 else 200)
    sink.script("/bad", lambda _n: 400)
    sink.script("/slow", lambda _n: (200, {}, 0.6))
    sink.script("/lat", lambda _n: (200, {}, 0.06))
    plan = [
        (await endpoint(api, sink.url + "/ok", "ok.e"), "ok.e", 4),
        (await endpoint(api, sink.url + "/flaky", "flaky.e", maxRetries=4), "flaky.e", 3),
        (await endpoint(api, sink.url + "/bad", "bad.e", maxRetries=2), "bad.e", 2),
        (await endpoint(api, sink.url + "/slow", "slow.e", maxRetries=2, timeoutMs=150), "slow.e", 1),
        (await endpoint(api, f"http://127.0.0.1:{free_port()}/closed", "closed.e", maxRetries=1), "closed.e", 1),
        (await endpoint(api, sink.url + "/lat", "lat.e"), "lat.e", 2),
    ]
    ids = [await send(api, etype, i) for _, etype, count in plan for i in range(count)]
    for event_id in ids:
        await api.wait_event(event_id, {"delivered", "dead"}, timeout=40)

    window = f"?from={z(datetime.now(UTC) - timedelta(hours=1))}&to={z(datetime.now(UTC) + timedelta(hours=1))}"
    conn = await asyncpg.connect(server.database_url)
    try:
        client_id = await conn.fetchval("SELECT client_id FROM events WHERE id = $1", uuid.UUID(ids[0]))
        attempts = await conn.fetch(
            "SELECT endpoint_id, outcome, error_category, duration_ms, date_trunc('hour', attempted_at, 'UTC') AS hour"
            " FROM delivery_attempts WHERE client_id = $1", client_id)
        tasks = Counter(r["status"] for r in await conn.fetch("SELECT status FROM tasks WHERE client_id = $1",
                                                              client_id))
    finally:
        await conn.close()
    outcomes = Counter(r["outcome"] for r in attempts)
    assert outcomes["failure"] >= 5 and outcomes["timeout"] >= 1 and outcomes["success"] >= 9, outcomes

    status, summary = await api.call("GET", "/api/v1/analytics/summary" + window)
    assert status == 200, summary
    assert summary["sent"] == len(attempts) and summary["successes"] == outcomes["success"]
    assert summary["failed"] == outcomes["failure"] + outcomes["timeout"] and summary["timeouts"] == outcomes["timeout"]
    assert summary["delivered"] == tasks["delivered"] and summary["deadLettered"] == tasks["dead"]

    status, series = await api.call("GET", "/api/v1/analytics/outcomes" + window)
    assert status == 200, series
    by_hour = Counter((z(r["hour"]), r["outcome"]) for r in attempts)
    for point in series["data"]:
        for outcome in ("success", "failure", "timeout"):
            assert point[outcome] == by_hour[(point["timestamp"], outcome)], (point, outcome)

    status, failures = await api.call("GET", "/api/v1/analytics/failures" + window)
    assert status == 200, failures
    raw_failures = Counter(raw_category(r["outcome"], r["error_category"]) for r in attempts
                           if r["outcome"] != "success")
    assert failures["categories"] == {c: raw_failures[c] for c in CATEGORIES}
    assert failures["categories"]["4xx"] == 4 and failures["categories"]["refused"] == 1

    status, latency = await api.call("GET", "/api/v1/analytics/latency" + window)
    assert status == 200, latency
    durations = [r["duration_ms"] for r in attempts]
    hist = hist_of(durations)
    for p in (50, 95, 99):
        assert latency["overall"][f"p{p}"] == percentile(hist, max(durations), p)
    assert latency["overall"]["count"] == len(attempts) and latency["overall"]["maxMs"] == max(durations)

    status, health = await api.call("GET", "/api/v1/analytics/endpoint-health" + window)
    assert status == 200, health
    by_endpoint = {e["endpointId"]: e for e in health["data"]}
    for endpoint_id, _, _ in plan:
        mine = [r for r in attempts if str(r["endpoint_id"]) == endpoint_id]
        got = by_endpoint[endpoint_id]
        assert got["attempts"] == len(mine)
        assert got["successes"] == sum(r["outcome"] == "success" for r in mine)
        mine_ms = [r["duration_ms"] for r in mine]
        assert got["p95LatencyMs"] == percentile(hist_of(mine_ms), max(mine_ms), 95)
    assert by_endpoint[plan[2][0]]["deliveryRate"] == 0.0 and by_endpoint[plan[0][0]]["deliveryRate"] == 1.0
    assert LATENCY_BOUNDS_MS[0] <= by_endpoint[plan[5][0]]["p95LatencyMs"] <= 1000, "the 60 ms receiver"

    # Every process's counters add up on /metrics (prometheus-client multiprocess mode).
    async with api.session.get(server.url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    for outcome in ("success", "failure", "timeout"):
        m = re.search(rf'^mittr_deliveries_total{{outcome="{outcome}"}} (\S+)$', text, re.MULTILINE)
        assert m and float(m.group(1)) == outcomes[outcome], (outcome, m and m.group(0))
    m = re.search(r'^mittr_events_ingested_total{route="single"} (\S+)$', text, re.MULTILINE)
    assert m and float(m.group(1)) >= len(ids)
    for name in ("mittr_attempt_duration_seconds_bucket", "mittr_processing_overhead_seconds_bucket",
                 "mittr_queue_depth", "mittr_breaker_endpoints", "mittr_lease_owned"):
        assert name in text, name
    assert len(re.findall(r'^mittr_lease_owned{.*} 1\.0$', text, re.MULTILINE)) == 2, "two shards hold leases"


async def test_stats_websocket_through_the_server(api: Api, server: MittrServer) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/api/v1/stats/ws"
    async with api.session.ws_connect(f"{ws_url}?key={server.admin_key}") as ws:
        started = time.perf_counter()
        got = []
        while time.perf_counter() - started < 2.5:
            try:
                msg = await ws.receive_json(timeout=2.5 - (time.perf_counter() - started))
            except TimeoutError:
                break
            got.append(msg)
    assert len(got) >= 2, f"{len(got)} pushes in 2.5 s"
    assert {"queue", "inFlight", "deliveredPerSec", "failedPerSec", "shards"} <= set(got[0])
    async with api.session.ws_connect(f"{ws_url}?key=mtr_not_a_key") as ws:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT and '"UNAUTHORIZED"' in msg.data
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008


async def test_poll_mode_over_http(api: Api) -> None:
    ep = await endpoint(api, "https://consumer.example.com/hook", "pulled.e", deliveryMode="poll")
    waiting = asyncio.create_task(api.call("GET", f"/api/v1/poll?endpoint_id={ep}&timeout=20"))
    await asyncio.sleep(0.5)
    event_id = await send(api, "pulled.e", 1)
    status, body = await asyncio.wait_for(waiting, 5)
    assert status == 200 and [e["id"] for e in body["data"]] == [event_id] and body["count"] == 1
    await asyncio.sleep(1.0)
    status, event = await api.call("GET", f"/api/v1/events/{event_id}")
    assert event["status"] == "queued" and event["attempts"] == 0, "no shard pushed a poll-mode event"
    status, out = await api.call("POST", "/api/v1/poll/ack", {"endpoint_id": ep, "event_ids": [event_id]})
    assert status == 200 and out == {"acknowledged": 1}
    event = await api.wait_event(event_id, {"delivered"})
    assert event["deliveryAttempts"][0]["outcome"] == "success"
