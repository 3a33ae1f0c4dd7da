"""Filters end to end: a real `mittr serve`, a real sink; only matching events reach a filtered endpoint."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support.server import Api
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e
SERVER_SHARDS = 1


async def test_only_matching_events_reach_a_filtered_endpoint(api: Api, sink: Sink) -> None:
    for path, extra in (("/big-eur", {"filter": [{"field": "$.data.amount", "operator": "gte", "value": 10000},
                                                 {"field": "$.data.currency", "operator": "in",
                                                  "value": ["EUR", "GBP"]}]}),
                        ("/all", {})):
        status, ep = await api.call("POST", "/api/v1/endpoints",
                                    {"url": sink.url + path, "eventTypes": ["payment.*"], **extra})
        assert status == 201, ep
    payloads = [{"n": 1, "amount": 20000, "currency": "EUR"}, {"n": 2, "amount": 50, "currency": "EUR"},
                {"n": 3, "amount": 20000, "currency": "USD"}, {"n": 4, "amount": 10000, "currency": "GBP"}]
    events = []
    for payload in payloads:
        status, ev = await api.call("POST", "/api/v1/events", {"eventType": "payment.captured", "payload": payload},
                                    {"X-Idempotency-Key": str(uuid.uuid4())})
        assert status == 201, ev
        events.append(ev["id"])
    for event_id in events:
        await api.wait_event(event_id, {"delivered"})
    assert sorted(json.loads(r.body)["n"] for r in sink.at("/all")) == [1, 2, 3, 4]
    assert sorted(json.loads(r.body)["n"] for r in sink.at("/big-eur")) == [1, 4]
