"""Delivery notifications end to end: a real `mittr serve` (background evaluator off, so `evaluate`
drives the rounds), an endpoint whose breaker opens and closes again, deliveries that end dead, and
connectors that opted into some kinds and not others."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from tests.support.server import Api
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e
SERVER_ENV = {"MITTR_ALERTING__ENABLED": "false", "MITTR_ALERTING__NOTIFY_SETTLE_S": "0.5"}


async def evaluate(api: Api) -> dict[str, Any]:
    status, out = await api.call("POST", "/api/v1/alerting/evaluate")
    assert status == 200, out
    return out


async def evaluate_until(api: Api, sink: Sink, path: str, count: int, timeout: float = 40) -> list[Any]:
    """Run rounds until `path` has `count` notifications (rows are read once they have settled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(sink.at(path)) < count:
        assert loop.time() < deadline, f"{path}: {len(sink.at(path))} of {count} notifications"
        await evaluate(api)
        await asyncio.sleep(0.3)
    return sink.at(path)


async def connector(api: Api, kind: str, url: str, notify: list[str]) -> dict[str, Any]:
    status, c = await api.call("POST", "/api/v1/connectors", {
        "name": f"{kind}-{uuid.uuid4().hex[:6]}", "type": kind, "config": {"webhookUrl": url}, "notify": notify})
    assert status == 201, c
    assert c["notify"] == sorted(notify)
    return c


async def dead_direct_event(api: Api, url: str, key: str) -> None:
    status, ev = await api.call("POST", "/api/v1/events", {"destination": url, "payload": {"x": 1}, "maxAttempts": 1},
                                {"X-Idempotency-Key": key})
    assert status == 201, ev
    await api.wait_event(ev["id"], {"dead"})


async def test_breaker_and_dead_event_notifications_once_each_to_the_connectors_that_opted_in(
        api: Api, sink: Sink) -> None:
    slack = await connector(api, "slack", sink.url + "/slack", ["endpoint.breaker_opened", "event.dead"])
    closed = await connector(api, "webhook", sink.url + "/closed", ["endpoint.breaker_closed"])
    await connector(api, "slack", sink.url + "/alerts-only", ["alerts"])

    sink.script("/receiver", lambda _n: 500)
    status, ep = await api.call("POST", "/api/v1/endpoints", {
        "url": sink.url + "/receiver", "eventTypes": ["nt.*"], "circuitThreshold": 1, "circuitResetMs": 500})
    assert status == 201, ep
    status, ev = await api.call("POST", "/api/v1/events", {"eventType": "nt.order", "payload": {"i": 1},
                                                           "maxAttempts": 1}, {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, ev
    await api.wait_event(ev["id"], {"dead"})
    # Deliveries Mittr makes for alerts and notifications never notify, even when they die
    # (a connector that is down would otherwise be told about itself, in a loop).
    sink.script("/internal", lambda _n: 500)
    await dead_direct_event(api, sink.url + "/internal", f"mittr-notify-{uuid.uuid4()}")
    await dead_direct_event(api, sink.url + "/internal", f"mittr-alert-{uuid.uuid4()}")

    got = await evaluate_until(api, sink, "/slack", 2)
    bodies = {json.loads(r.body)["text"].split(":")[0]: json.loads(r.body) for r in got}
    assert set(bodies) == {"[firing] Circuit breaker opened", "[firing] Event dead"}, list(bodies)
    opened = bodies["[firing] Circuit breaker opened"]
    assert opened["text"].endswith(sink.url + "/receiver")
    assert opened["attachments"][0]["color"].startswith("#")
    assert {"title": "Endpoint ID", "value": ep["id"], "short": True} in opened["attachments"][0]["fields"]
    dead = bodies["[firing] Event dead"]
    fields = {f["title"]: f["value"] for f in dead["attachments"][0]["fields"]}
    assert fields["Event"] == ev["id"] and fields["Event type"] == "nt.order" and fields["Attempts"] == "1"
    assert fields["Status code"] == "500" and fields["Error"]
    assert ev["id"] in dead["attachments"][0]["text"]

    for _ in range(3):                                   # later rounds send nothing again
        again = await evaluate(api)
        assert again["notified"] == [], again["notified"]
        await asyncio.sleep(0.4)
    assert len(sink.at("/slack")) == 2
    assert sink.at("/closed") == [] and sink.at("/alerts-only") == []

    # The receiver recovers: the next delivery is the breaker's probe, which closes it.
    sink.script("/receiver", lambda _n: 200)
    status, ok = await api.call("POST", "/api/v1/events", {"eventType": "nt.order", "payload": {"i": 2}},
                                {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, ok
    await api.wait_event(ok["id"], {"delivered"}, timeout=30)
    [recovered] = await evaluate_until(api, sink, "/closed", 1)
    body = json.loads(recovered.body)
    assert body["type"] == "endpoint.breaker_closed" and body["status"] == "resolved"
    assert body["dedupKey"] == f"mittr-breaker-{ep['id']}" and body["data"]["endpoint_id"] == ep["id"]
    await evaluate(api)
    await asyncio.sleep(0.5)
    assert len(sink.at("/slack")) == 2 and len(sink.at("/closed")) == 1 and sink.at("/alerts-only") == []

    status, events = await api.call("GET", "/api/v1/events?limit=100")
    assert status == 200
    keys = [e["idempotencyKey"] for e in events["data"] if e["idempotencyKey"].startswith("mittr-notify-")]
    assert sum(slack["id"] in k for k in keys) == 2 and sum(closed["id"] in k for k in keys) == 1


async def test_notify_kinds_are_checked(api: Api) -> None:
    status, err = await api.call("POST", "/api/v1/connectors", {
        "name": "x", "type": "slack", "config": {"webhookUrl": "https://hooks.slack.com/services/x"},
        "notify": ["alerts", "endpoint.on_fire"]})
    assert status == 400 and err["error"].startswith("notify[1]:"), err
    status, err = await api.call("POST", "/api/v1/connectors", {
        "name": "m", "type": "email", "notify": ["event.dead"],
        "config": {"smtpHost": "smtp.example.com", "fromEmail": "alerts@example.com"}})
    assert status == 400 and err["error"].startswith("config.to:"), err
