"""Analytics read the per-minute rollups: bucket math, percentiles, filters, validation, tenancy.

(That the engine's writer keeps the rollups in agreement with the raw attempts is proven end to end
in tests/e2e/test_observability_e2e.py.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from control.services import rollups
from control.services.rollups import AttemptFact, aggregate, latency_bucket, percentile
from tests.integration.conftest import Caller

BASE = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


def z(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def fact(client: uuid.UUID, endpoint: uuid.UUID | None, minutes: int, outcome: str, ms: int, status: str,
         category: str | None = None, project: uuid.UUID | None = None) -> AttemptFact:
    return AttemptFact(client, project, endpoint, BASE + timedelta(minutes=minutes, seconds=17), outcome, category,
                       ms, status)


async def seed(pool: asyncpg.Pool, facts: list[AttemptFact]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await rollups.apply(conn, aggregate(facts))


@pytest.fixture
async def scene(app_client: Caller, pool: asyncpg.Pool) -> dict[str, Any]:
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", {"url": "https://r.example.com/a",
                                                                        "eventTypes": ["a.*"]})
    assert status == 201
    client, endpoint = uuid.UUID(app_client.client_id), uuid.UUID(ep["id"])
    project = uuid.uuid4()
    await pool.execute("INSERT INTO projects (id, client_id, name) VALUES ($1, $2, 'p')", project, client)
    facts = [
        fact(client, endpoint, 5, "success", 3, "delivered"),
        fact(client, endpoint, 5, "success", 40, "delivered"),
        fact(client, endpoint, 6, "success", 700, "delivered", project=project),
        fact(client, None, 7, "success", 8, "delivered"),
        fact(client, endpoint, 65, "failure", 120, "failed", "5xx"),
        fact(client, endpoint, 65, "timeout", 30000, "dead", "timeout"),
    ]
    # Two batches touching the same rows: the upsert adds counts and histograms up.
    await seed(pool, facts[:3])
    await seed(pool, facts[3:])
    return {"endpoint": str(endpoint), "project": str(project)}


def window(extra: str = "") -> str:
    return f"?from={z(BASE)}&to={z(BASE + timedelta(hours=3))}{extra}"


async def get(c: Caller, path: str, **kw: Any) -> dict[str, Any]:
    status, body, _ = await c.call("GET", path, **kw)
    assert status == 200, body
    return dict(body)


async def test_summary_counts(app_client: Caller, scene: dict[str, Any]) -> None:
    s = await get(app_client, "/api/v1/analytics/summary" + window())
    assert (s["sent"], s["delivered"], s["failed"], s["deadLettered"]) == (6, 4, 2, 1)
    assert s["successes"] == 4 and s["timeouts"] == 1 and s["successRate"] == round(4 / 6, 4)
    assert s["granularity"] == "hour" and s["from"] == z(BASE) and s["endpointId"] is None
    one = await get(app_client, "/api/v1/analytics/summary" + window(f"&endpointId={scene['endpoint']}"))
    assert (one["sent"], one["delivered"], one["endpointId"]) == (5, 3, scene["endpoint"])


async def test_outcomes_throughput_latency_failures_per_hour(app_client: Caller, scene: dict[str, Any]) -> None:
    o = await get(app_client, "/api/v1/analytics/outcomes" + window())
    assert [p["timestamp"] for p in o["data"]] == [z(BASE + timedelta(hours=h)) for h in range(3)]
    assert [(p["success"], p["failure"], p["timeout"], p["delivered"], p["dead"]) for p in o["data"]] == [
        (4, 0, 0, 4, 0), (0, 1, 1, 0, 1), (0, 0, 0, 0, 0)]

    t = await get(app_client, "/api/v1/analytics/throughput" + window())
    assert t["data"][0]["attempts"] == 4 and t["data"][0]["eventsPerSec"] == round(4 / 3600, 4)

    lat = await get(app_client, "/api/v1/analytics/latency" + window())
    # durations 3, 8, 40, 120, 700, 30000: p50 is the 3rd (bucket <= 50), p95/p99 the 6th (the max)
    assert {k: lat["overall"][k] for k in ("count", "p50", "p95", "p99", "maxMs")} == {
        "count": 6, "p50": 50, "p95": 30000, "p99": 30000, "maxMs": 30000}
    assert lat["data"][0]["p50"] == 10 and lat["data"][2]["p50"] is None and lat["data"][2]["count"] == 0

    f = await get(app_client, "/api/v1/analytics/failures" + window())
    assert f["total"] == 2
    assert f["categories"] == {"timeout": 1, "4xx": 0, "5xx": 1, "dns": 0, "tls": 0, "refused": 0, "other": 0}
    assert f["data"][1]["5xx"] == 1 and f["data"][1]["total"] == 2


async def test_endpoint_health(app_client: Caller, scene: dict[str, Any]) -> None:
    h = await get(app_client, "/api/v1/analytics/endpoint-health" + window())
    [ep] = h["data"]
    assert ep["endpointId"] == scene["endpoint"] and ep["circuitState"] == "closed" and ep["status"] == "active"
    assert (ep["attempts"], ep["successes"], ep["failed"], ep["delivered"], ep["dead"]) == (5, 3, 2, 3, 1)
    assert ep["deliveryRate"] == 0.6 and ep["p95LatencyMs"] == 30000


async def test_default_window_and_daily_buckets(app_client: Caller, scene: dict[str, Any]) -> None:
    s = await get(app_client, "/api/v1/analytics/summary")
    assert s["sent"] == 6, "the default window is the last 24 hours"
    d = await get(app_client, f"/api/v1/analytics/outcomes?from={z(BASE - timedelta(days=8))}")
    assert d["granularity"] == "day"
    assert all(p["timestamp"].endswith("T00:00:00Z") for p in d["data"])
    assert sum(p["success"] for p in d["data"]) == 4 and len(d["data"]) in (9, 10)


async def test_project_scoping(app_client: Caller, scene: dict[str, Any]) -> None:
    s = await get(app_client, "/api/v1/analytics/summary" + window(), headers={"X-Project-ID": scene["project"]})
    assert (s["sent"], s["delivered"]) == (1, 1)


async def test_other_tenants_see_nothing(app_client: Caller, scene: dict[str, Any], second_key: str) -> None:
    s = await get(app_client, "/api/v1/analytics/summary" + window(), key=second_key)
    assert s["sent"] == 0 and s["successRate"] is None
    h = await get(app_client, "/api/v1/analytics/endpoint-health" + window(), key=second_key)
    assert h["data"] == []


@pytest.mark.parametrize("query", [
    "?from=yesterday", "?to=2026-05-01", "?from=2026-05-01T00:00:00", "?endpointId=nope",
    "?from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z", "?from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
])
async def test_bad_parameters_answer_400(app_client: Caller, query: str) -> None:
    status, body, _ = await app_client.call("GET", "/api/v1/analytics/summary" + query)
    assert status == 400 and body["code"] == "BAD_REQUEST", body


def test_latency_buckets_and_percentiles() -> None:
    assert [latency_bucket(ms) for ms in (0, 5, 6, 60000, 60001)] == [0, 0, 1, 12, 13]
    assert percentile([0] * rollups.BUCKETS, 0, 50) is None
    hist = [0] * rollups.BUCKETS
    hist[latency_bucket(70000)] = 1
    assert percentile(hist, 70000, 99) == 70000, "the open-ended bucket reports the largest duration"
    c = uuid.uuid4()
    rows = aggregate([fact(c, None, 0, "success", 2, "delivered"), fact(c, None, 0, "failure", 9, "dead", "blocked")])
    [counts] = rows.values()
    assert (counts.attempts, counts.successes, counts.failures, counts.dead, counts.duration_max_ms) == (2, 1, 1, 1, 9)
    assert counts.errors[rollups.CATEGORIES.index("other")] == 1, "blocked (SSRF) counts as other"
