"""Batch ingest, replay, edit and batch retry end to end: a real `mittr serve`, real Postgres, a real sink."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.support.server import Api
from tests.support.sink import Sink, sink_on_shard

pytestmark = pytest.mark.e2e


def key() -> str:
    return f"k-{uuid.uuid4()}"


async def dead_event(api: Api, sink: Sink, path: str, payload: dict[str, object]) -> str:
    status, created = await api.call("POST", "/api/v1/events",
                                     {"destination": sink.url + path, "payload": payload, "maxAttempts": 1},
                                     {"X-Idempotency-Key": key()})
    assert status == 201, created
    event = await api.wait_event(created["id"], {"dead"})
    assert [a["statusCode"] for a in event["deliveryAttempts"]] == [500]
    return str(created["id"])


async def test_replay_of_a_dead_event_is_delivered(api: Api, sink: Sink) -> None:
    healthy = False
    sink.script("/flaky", lambda n: 200 if healthy else 500)
    event_id = await dead_event(api, sink, "/flaky", {"orderId": "ord_1"})
    status, first = await api.call("POST", f"/api/v1/events/{event_id}/replay")
    assert status == 200 and first["status"] != "delivered", first   # the receiver is still down: dies again
    await api.wait_event(event_id, {"dead"})
    assert len(sink.at("/flaky")) == 2
    healthy = True
    status, replayed = await api.call("POST", f"/api/v1/events/{event_id}/replay")
    assert status == 200 and replayed["status"] in ("queued", "delivering", "delivered"), replayed
    event = await api.wait_event(event_id, {"delivered"})
    assert [a["statusCode"] for a in event["deliveryAttempts"]] == [500, 500, 200]
    assert event["attempts"] == 1 and event["deliveredAt"] is not None
    got = sink.at("/flaky")
    assert len(got) == 3 and json.loads(got[-1].body) == {"orderId": "ord_1"}
    assert got[-1].headers["X-Mittr-Event-ID"] == event_id and got[-1].headers["X-Mittr-Attempt"] == "1"
    status, err = await api.call("POST", f"/api/v1/events/{event_id}/replay")
    assert status == 409 and err["code"] == "INVALID_STATE"
    # the attempts are first-class: listed and fetched by id
    status, page = await api.call("GET", "/api/v1/deliveries?range=1h&outcome=success&limit=200")
    assert status == 200
    mine = [d for d in page["data"] if d["eventId"] == event_id]
    assert len(mine) == 1 and mine[0]["responseBody"] == "OK"
    status, one = await api.call("GET", f"/api/v1/deliveries/{mine[0]['id']}")
    assert status == 200 and one == mine[0]


async def test_edit_destination_and_payload_then_replay(api: Api, sink: Sink) -> None:
    sink.script("/broken", lambda n: 500)
    event_id = await dead_event(api, sink, "/broken", {"amount": 9900})
    status, edited = await api.call("PATCH", f"/api/v1/events/{event_id}",
                                    {"destination": sink.url + "/fixed", "payload": {"amount": 9900, "corrected": True},
                                     "headers": {"X-Custom": "v"}, "replay": True})
    assert status == 200, edited
    assert edited["status"] in ("queued", "delivering", "delivered")
    await api.wait_event(event_id, {"delivered"})
    [got] = await sink.wait_for("/fixed", 1)
    assert got.body == b'{"amount":9900,"corrected":true}' and got.headers["X-Custom"] == "v"


async def test_batch_ingest_delivers_and_batch_retry_revives(api: Api, sink: Sink) -> None:
    up = False
    sink.script("/batch-down", lambda n: 200 if up else 500)
    events = [{"idempotencyKey": key(), "destination": sink.url + "/batch-ok", "payload": {"i": i}} for i in range(5)]
    events += [{"idempotencyKey": key(), "destination": sink.url + "/batch-down", "payload": {"i": 9},
                "maxAttempts": 1}]
    status, body = await api.call("POST", "/api/v1/events/batch", {"events": events})
    assert status == 201 and body["count"] == 6, body
    received = await sink.wait_for("/batch-ok", 5)
    assert sorted(json.loads(r.body)["i"] for r in received) == [0, 1, 2, 3, 4]
    ids = [e["id"] for e in body["events"]]
    for event_id in ids[:5]:
        await api.wait_event(event_id, {"delivered"})
    await api.wait_event(ids[5], {"dead"})
    up = True
    status, out = await api.call("POST", "/api/v1/events/batch/retry", {"eventIds": ids})
    assert status == 200 and out == {"retried": 1, "eventIds": [ids[5]]}
    await api.wait_event(ids[5], {"delivered"})
    assert len(sink.at("/batch-down")) == 2


@pytest.fixture(params=["same shard", "other shard"])
async def second_sink(request: pytest.FixtureRequest, sink: Sink) -> AsyncIterator[Sink]:
    """A receiver on another origin whose deliveries the same shard as `sink`'s (or the other one) makes."""
    s = await sink_on_shard(sink, request.param == "same shard")
    try:
        yield s
    finally:
        await s.stop()


async def test_edited_destination_is_not_also_sent_to_the_old_one(api: Api, sink: Sink, second_sink: Sink) -> None:
    """A retry waiting in a shard's memory follows the edit: the old URL sees no second request,
    whichever shard owns the new origin."""
    sink.script("/old", lambda n: (429, {"Retry-After": "2"}, 0.0))     # the retry waits 2 s in memory
    status, created = await api.call("POST", "/api/v1/events",
                                     {"destination": sink.url + "/old", "payload": {"v": 1}, "maxAttempts": 5},
                                     {"X-Idempotency-Key": key()})
    assert status == 201, created
    await api.wait_event(created["id"], {"failed"})
    first_at = sink.at("/old")[0].at
    status, edited = await api.call("PATCH", f"/api/v1/events/{created['id']}",
                                    {"destination": second_sink.url + "/new", "payload": {"v": 2}})
    assert status == 200, edited
    [got] = await second_sink.wait_for("/new", 1)
    assert got.body == b'{"v":2}'
    event = await api.wait_event(created["id"], {"delivered"})
    await asyncio.sleep(max(0.0, first_at + 3.0 - time.time()))     # past when the old retry was due
    assert len(sink.at("/old")) == 1
    assert [a["statusCode"] for a in event["deliveryAttempts"]] == [429, 200]
