"""GET /metrics (Prometheus), request ids and request logs, through the real app on a real database."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from blacksheep.testing import TestClient

from control.services.keys import create_client, create_key
from control.settings import load_settings
from engine.stats import ShardStats, report
from tests.integration.conftest import Caller

METRIC_NAMES = ("mittr_events_ingested_total", "mittr_deliveries_total", "mittr_attempt_duration_seconds",
                "mittr_processing_overhead_seconds", "mittr_queue_depth", "mittr_breaker_endpoints",
                "mittr_lease_owned", "mittr_shard_buffered", "mittr_shard_in_flight", "mittr_http_requests_total")


async def scrape(c: Caller, headers: dict[str, str] | None = None) -> tuple[int, str]:
    resp = await c.client.get("/metrics", headers=headers or {})
    return resp.status, (await resp.read() or b"").decode()


def sample(text: str, name: str, labels: str) -> float:
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def test_metrics_expose_every_family_and_count_ingest(app_client: Caller, pool: Any) -> None:
    status, body, _ = await app_client.call("POST", "/api/v1/endpoints", {"url": "https://r.example.com/m",
                                                                          "eventTypes": ["m.*"]})
    assert status == 201, body
    await report(pool, ShardStats(0, 0, 4096, "h:0", 3, 5, 1, 0), [])
    status, before = await scrape(app_client)
    assert status == 200
    status, _, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "m.x", "payload": {}},
                                         {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201
    batch = {"events": [{"idempotencyKey": str(uuid.uuid4()), "destination": "https://r.example.com/b",
                         "payload": {"n": i}} for i in range(2)]}
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch", batch)
    assert status == 201, out
    status, text = await scrape(app_client)
    assert status == 200
    for name in METRIC_NAMES:
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    ingested = 'route="single"'
    assert sample(text, "mittr_events_ingested_total", ingested) == sample(before, "mittr_events_ingested_total",
                                                                          ingested) + 1
    assert sample(text, "mittr_events_ingested_total", 'route="batch"') == sample(
        before, "mittr_events_ingested_total", 'route="batch"') + 2
    assert sample(text, "mittr_queue_depth", 'state="queued"') >= 1
    assert sample(text, "mittr_breaker_endpoints", 'state="closed"') >= 1
    assert sample(text, "mittr_shard_buffered", 'slot="0-4096"') == 5


@pytest.fixture
async def guarded(db_url: str, pool: Any) -> AsyncIterator[Caller]:
    from api.app import create_app

    app = create_app(load_settings(env={"DATABASE_URL": db_url, "MITTR_METRICS__TOKEN": "s3cret-token"}))
    await app.start()
    row = await create_client(pool, "tenant-m")
    key = await create_key(pool, row["id"], "admin")
    try:
        yield Caller(TestClient(app), key.key, str(row["id"]))
    finally:
        await app.stop()


async def test_metrics_token(guarded: Caller) -> None:
    assert (await scrape(guarded))[0] == 401
    assert (await scrape(guarded, {"Authorization": "Bearer wrong"}))[0] == 401
    status, text = await scrape(guarded, {"Authorization": "Bearer s3cret-token"})
    assert status == 200 and "mittr_queue_depth" in text


async def test_request_id_is_echoed_or_made_and_logged(app_client: Caller, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mittr.api.request")
    status, _, resp = await app_client.call("GET", "/api/v1/stats", headers={"X-Request-ID": "req-123.abc"})
    assert status == 200 and resp.get_first_header(b"X-Request-ID") == b"req-123.abc"
    status, _, resp = await app_client.call("GET", "/api/v1/events/nope", headers={"X-Request-ID": "bad id\u00e9"})
    made = resp.get_first_header(b"X-Request-ID").decode()
    assert status == 404 and re.fullmatch(r"[0-9a-f]{32}", made), "an unusable id is replaced"
    ok = [r for r in caplog.records if getattr(r, "request_id", None) == "req-123.abc"]
    assert [(r.levelname, r.getMessage(), r.status) for r in ok] == [("DEBUG", "request", 200)]  # type: ignore[attr-defined]
    failed = [r for r in caplog.records if getattr(r, "request_id", None) == made]
    ours = {(r.levelname, r.status) for r in failed if r.name == "mittr.api.request"}  # type: ignore[attr-defined]
    assert ours == {("DEBUG", 404), ("WARNING", 404)}
    assert any(r.name != "mittr.api.request" for r in failed), "other loggers' lines carry the id too"
    assert all(app_client.key not in r.getMessage() and "X-API-Key" not in str(r.__dict__) for r in caplog.records)
