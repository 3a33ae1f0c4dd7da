"""The foundation, end to end: a real `mittr serve` subprocess, real Postgres, a real HTTP sink."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid

import pytest

from tests.support.server import Api, MittrServer
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e


async def make_endpoint(api: Api, url: str, event_types: list[str], **extra: object) -> dict[str, object]:
    status, body = await api.call("POST", "/api/v1/endpoints", {"url": url, "eventTypes": event_types, **extra})
    assert status == 201, body
    return body


def key() -> str:
    return f"k-{uuid.uuid4()}"


async def test_fan_out_by_wildcard_delivers_signed_payload(api: Api, sink: Sink) -> None:
    ep = await make_endpoint(api, sink.url + "/orders", ["order.*"])
    other = await make_endpoint(api, sink.url + "/payments", ["payment.*"])
    payload = {"orderId": "ord_4a8f", "amount": 9900, "currency": "USD"}
    status, created = await api.call("POST", "/api/v1/events", {"eventType": "order.created", "payload": payload},
                                     {"X-Idempotency-Key": key()})
    assert status == 201, created
    assert created["status"] == "queued" and created["attempts"] == 0 and created["priority"] == 5
    assert created["eventType"] == "order.created" and created["maxAttempts"] == 5
    got = await sink.wait_for("/orders", 1)
    req = got[0]
    assert json.loads(req.body) == payload
    secret = str(ep["signingSecret"]).encode()
    expected = "v1=" + hmac.new(secret, req.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Mittr-Signature"], expected)
    assert req.headers["X-Mittr-Event-ID"] == created["id"]
    assert abs(int(req.headers["X-Mittr-Timestamp"]) - time.time()) < 30
    event = await api.wait_event(created["id"], {"delivered"})
    assert event["attempts"] == 1 and event["deliveredAt"] is not None
    assert event["payload"] == payload
    [attempt] = event["deliveryAttempts"]
    assert attempt["statusCode"] == 200 and attempt["attemptNumber"] == 1
    assert attempt["durationMs"] >= 0 and attempt["processingOverheadUs"] > 0
    assert sink.at("/payments") == [], f"{other['id']} must not receive order events"


async def test_retries_with_growing_gaps_until_success(api: Api, sink: Sink) -> None:
    sink.script("/flaky", lambda n: 500 if n <= 2 else 200)
    await make_endpoint(api, sink.url + "/flaky", ["flaky.*"], retryBackoffMs=200, retryBackoffMult=3.0)
    status, created = await api.call("POST", "/api/v1/events", {"eventType": "flaky.thing", "payload": {"a": 1}},
                                     {"X-Idempotency-Key": key()})
    assert status == 201
    got = await sink.wait_for("/flaky", 3)
    gap1, gap2 = got[1].at - got[0].at, got[2].at - got[1].at
    assert 0.09 <= gap1 and gap2 > gap1, (gap1, gap2)
    event = await api.wait_event(created["id"], {"delivered"})
    codes = [a["statusCode"] for a in event["deliveryAttempts"]]
    assert codes == [500, 500, 200]
    status, deliveries = await api.call("GET", f"/api/v1/events/{created['id']}/deliveries")
    assert status == 200 and deliveries["count"] == 3
    assert [d["attemptNumber"] for d in deliveries["deliveries"]] == [1, 2, 3]
    assert deliveries["deliveries"][0]["responseBody"] == "nope"


async def test_max_attempts_exhausted_ends_dead(api: Api, sink: Sink) -> None:
    sink.script("/down", lambda n: 503)
    status, created = await api.call(
        "POST", "/api/v1/events", {"destination": sink.url + "/down", "payload": {"x": 1}, "maxAttempts": 2},
        {"X-Idempotency-Key": key()})
    assert status == 201 and created["maxAttempts"] == 2
    event = await api.wait_event(created["id"], {"dead"}, timeout=30)
    assert event["attempts"] == 2
    assert [a["statusCode"] for a in event["deliveryAttempts"]] == [503, 503]
    await asyncio.sleep(1.5)
    assert len(sink.at("/down")) == 2, "no attempt after the last one"


async def test_delay_is_not_delivered_early(api: Api, sink: Sink) -> None:
    started = time.time()
    status, created = await api.call(
        "POST", "/api/v1/events", {"destination": sink.url + "/later", "payload": {"x": 1}, "delaySeconds": 3},
        {"X-Idempotency-Key": key()})
    assert status == 201
    await asyncio.sleep(1.0)
    status, body = await api.call("GET", f"/api/v1/events/{created['id']}")
    assert body["status"] == "queued" and sink.at("/later") == []
    [req] = await sink.wait_for("/later", 1, timeout=15)
    assert req.at >= started + 3.0 - 0.02, req.at - started


async def test_duplicate_idempotency_key_conflicts_and_delivers_once(api: Api, sink: Sink) -> None:
    k = key()
    body = {"destination": sink.url + "/once", "payload": {"n": 1}}
    s1, first = await api.call("POST", "/api/v1/events", body, {"X-Idempotency-Key": k})
    s2, second = await api.call("POST", "/api/v1/events", body, {"X-Idempotency-Key": k})
    assert s1 == 201
    assert s2 == 409 and second["code"] == "CONFLICT" and second["eventId"] == first["id"]
    await sink.wait_for("/once", 1)
    await asyncio.sleep(1.0)
    assert len(sink.at("/once")) == 1


async def test_paused_endpoint_holds_events_until_resumed(api: Api, sink: Sink) -> None:
    ep = await make_endpoint(api, sink.url + "/paused", ["hold.*"])
    status, paused = await api.call("POST", f"/api/v1/endpoints/{ep['id']}/pause")
    assert status == 200 and paused["status"] == "paused"
    ids = []
    for _ in range(3):
        status, created = await api.call("POST", "/api/v1/events", {"eventType": "hold.it", "payload": {"p": 1}},
                                         {"X-Idempotency-Key": key()})
        assert status == 201
        ids.append(created["id"])
    await asyncio.sleep(1.5)
    assert sink.at("/paused") == []
    for event_id in ids:
        _, ev = await api.call("GET", f"/api/v1/events/{event_id}")
        assert ev["status"] == "queued"
    status, resumed = await api.call("POST", f"/api/v1/endpoints/{ep['id']}/resume")
    assert status == 200 and resumed["status"] == "active"
    await sink.wait_for("/paused", 3)
    for event_id in ids:
        await api.wait_event(event_id, {"delivered"})


async def test_other_tenant_gets_404(api: Api, server: MittrServer, sink: Sink) -> None:
    ep = await make_endpoint(api, sink.url + "/mine", ["mine.*"])
    _, created = await api.call("POST", "/api/v1/events", {"eventType": "mine.x", "payload": {}},
                                {"X-Idempotency-Key": key()})
    out = subprocess.run(
        [sys.executable, "-m", "control.cli", "keys", "create", "--name", "other", "--new-client", "Other Co",
         "--json"], capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "DATABASE_URL": server.database_url})
    other = json.loads(out.stdout)
    assert other["key"].startswith("mtr_") and other["clientId"]
    for path in (f"/api/v1/events/{created['id']}", f"/api/v1/events/{created['id']}/deliveries",
                 f"/api/v1/endpoints/{ep['id']}"):
        status, body = await api.call("GET", path, key=other["key"])
        assert status == 404 and body["code"] == "NOT_FOUND", (path, body)
    status, body = await api.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"description": "x"}, key=other["key"])
    assert status == 404
    status, listing = await api.call("GET", "/api/v1/events", key=other["key"])
    assert status == 200 and listing["data"] == []
    status, body = await api.call("GET", "/api/v1/events", key="mtr_nope")
    assert status == 401 and body == {"error": "missing or invalid API key", "code": "UNAUTHORIZED"}
