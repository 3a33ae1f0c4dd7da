"""Transformations end to end: a real `mittr serve` runs an endpoint's handler before signing and
sending; the sink receives (and can verify) the rewritten request."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest

from tests.support.server import Api
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e
SERVER_SHARDS = 1

REWRITE = """function handler(webhook) {
    webhook.payload = {id: webhook.payload.orderId, cents: webhook.payload.amount * 100,
                       type: webhook.eventType};
    webhook.headers["X-Transformed"] = "yes";
    webhook.url = webhook.url.replace("/original", "/rewritten");
    return webhook;
}"""


async def endpoint(api: Api, url: str, event_type: str, code: str) -> dict[str, Any]:
    status, ep = await api.call("POST", "/api/v1/endpoints",
                                {"url": url, "eventTypes": [event_type], "transformation": code,
                                 "maxRetries": 2, "retryBackoffMs": 100})
    assert status == 201, ep
    return ep  # type: ignore[no-any-return]


async def send(api: Api, event_type: str, payload: dict[str, Any]) -> str:
    status, ev = await api.call("POST", "/api/v1/events", {"eventType": event_type, "payload": payload},
                                {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, ev
    return str(ev["id"])


async def test_a_rewriting_transform_is_received_rewritten_and_signed(api: Api, sink: Sink) -> None:
    ep = await endpoint(api, sink.url + "/original", "order.created", REWRITE)
    event_id = await send(api, "order.created", {"orderId": "ord_4a8f", "amount": 99})
    [got] = await sink.wait_for("/rewritten", 1)
    assert json.loads(got.body) == {"id": "ord_4a8f", "cents": 9900, "type": "order.created"}
    assert got.headers["X-Transformed"] == "yes"
    expected = "v1=" + hmac.new(str(ep["signingSecret"]).encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["X-Mittr-Signature"], expected)
    event = await api.wait_event(event_id, {"delivered"})
    assert event["payload"] == {"orderId": "ord_4a8f", "amount": 99}, "the stored event is unchanged"
    assert sink.at("/original") == []


async def test_cancel_ends_the_delivery_dead_without_sending(api: Api, sink: Sink) -> None:
    await endpoint(api, sink.url + "/cancel", "order.cancelled",
                   "function handler(w) { w.cancel = true; return w }")
    event_id = await send(api, "order.cancelled", {"orderId": "o1"})
    event = await api.wait_event(event_id, {"dead"})
    assert sink.at("/cancel") == []
    for attempt in event["deliveryAttempts"]:      # if the cancel is recorded as an attempt, it says so
        assert attempt["error"] == "cancelled by transformation" and attempt["statusCode"] is None


async def test_a_looping_transform_fails_the_attempt_and_the_shard_lives_on(api: Api, sink: Sink) -> None:
    await endpoint(api, sink.url + "/loop", "order.looped", "function handler(w) { while (true) {} }")
    event_id = await send(api, "order.looped", {"orderId": "o2"})
    event = await api.wait_event(event_id, {"dead"}, timeout=30)
    assert sink.at("/loop") == []
    errors = [a["error"] for a in event["deliveryAttempts"]]
    assert errors and all("CPU time limit" in e for e in errors), errors
    # the same shard still delivers
    await endpoint(api, sink.url + "/original", "order.after", REWRITE)
    await send(api, "order.after", {"orderId": "o3", "amount": 1})
    await sink.wait_for("/rewritten", 1)
