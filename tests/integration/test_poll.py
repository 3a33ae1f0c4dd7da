"""Pull delivery through the real API on a real database: long-poll, ack, visibility timeout."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from blacksheep.testing import TestClient

from control.services.keys import create_client, create_key
from control.settings import load_settings
from tests.integration.conftest import Caller


@pytest.fixture
async def poller(db_url: str, pool: Any) -> AsyncIterator[Caller]:
    """The app with a 1-second visibility timeout, so that re-offers can be watched quickly."""
    from api.app import create_app

    app = create_app(load_settings(env={"DATABASE_URL": db_url, "MITTR_POLL__VISIBILITY_TIMEOUT_S": "1",
                                        "MITTR_POLL__RECHECK_MS": "200"}))
    await app.start()
    client_row = await create_client(pool, "tenant-poll")
    key = await create_key(pool, client_row["id"], "admin")
    try:
        yield Caller(TestClient(app), key.key, str(client_row["id"]))
    finally:
        await app.stop()


async def poll_endpoint(c: Caller, mode: str = "poll", types: tuple[str, ...] = ("order.*",)) -> str:
    status, body, _ = await c.call("POST", "/api/v1/endpoints", {"url": "https://consumer.example.com/hook",
                                                              "eventTypes": list(types), "deliveryMode": mode})
    assert status == 201, body
    return str(body["id"])


async def send(c: Caller, event_type: str = "order.created", **payload: Any) -> dict[str, Any]:
    status, body, _ = await c.call("POST", "/api/v1/events", {"eventType": event_type, "payload": payload},
                                {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, body
    return body


async def poll(c: Caller, endpoint_id: str, timeout: int = 0, limit: int = 10) -> list[dict[str, Any]]:
    status, body, _ = await c.call("GET", f"/api/v1/poll?endpoint_id={endpoint_id}&limit={limit}&timeout={timeout}")
    assert status == 200, body
    assert body["count"] == len(body["data"])
    return list(body["data"])


async def ack(c: Caller, endpoint_id: str, ids: list[str]) -> int:
    status, body, _ = await c.call("POST", "/api/v1/poll/ack", {"endpoint_id": endpoint_id, "event_ids": ids})
    assert status == 200, body
    return int(body["acknowledged"])


async def test_poll_hands_out_waiting_events_once_and_ack_delivers_them(app_client: Caller) -> None:
    ep = await poll_endpoint(app_client)
    first = await send(app_client, orderId="o-1")
    second = await send(app_client, orderId="o-2")
    got = await poll(app_client, ep)
    assert [e["id"] for e in got] == [first["id"], second["id"]]
    assert got[0]["payload"] == {"orderId": "o-1"} and got[0]["eventType"] == "order.created"
    assert got[0]["attempts"] == 0 and got[0]["headers"] == {} and got[0]["createdAt"] == first["createdAt"]
    assert await poll(app_client, ep) == [], "handed-out events stay hidden for the visibility timeout"

    assert await ack(app_client, ep, [first["id"], second["id"]]) == 2
    status, event, _ = await app_client.call("GET", f"/api/v1/events/{first['id']}")
    assert status == 200 and event["status"] == "delivered" and event["attempts"] == 1
    [attempt] = event["deliveryAttempts"]
    assert attempt["outcome"] == "success" and attempt["attemptNumber"] == 1 and attempt["statusCode"] is None
    assert await ack(app_client, ep, [first["id"]]) == 0, "an event is acknowledged once"


async def test_long_poll_returns_within_100ms_of_an_event_arriving(app_client: Caller) -> None:
    ep = await poll_endpoint(app_client)
    waiting = asyncio.create_task(poll(app_client, ep, timeout=10))
    await asyncio.sleep(0.5)
    assert not waiting.done(), "nothing to hand out yet: the poll must wait"
    created = await send(app_client, orderId="late")
    arrived = time.perf_counter()
    got = await waiting
    elapsed = time.perf_counter() - arrived
    assert [e["id"] for e in got] == [created["id"]]
    assert elapsed < 0.1, f"the long-poll returned {elapsed * 1000:.0f} ms after the event arrived"


async def test_long_poll_times_out_empty(app_client: Caller) -> None:
    ep = await poll_endpoint(app_client)
    started = time.perf_counter()
    assert await poll(app_client, ep, timeout=1) == []
    assert time.perf_counter() - started >= 0.9


async def test_unacknowledged_events_are_offered_again_after_the_visibility_timeout(poller: Caller) -> None:
    ep = await poll_endpoint(poller)
    created = await send(poller, orderId="again")
    assert [e["id"] for e in await poll(poller, ep)] == [created["id"]]
    assert await poll(poller, ep) == []
    again = await poll(poller, ep, timeout=5)
    assert [e["id"] for e in again] == [created["id"]], "offered again once the 1 s visibility timeout ran out"
    assert await ack(poller, ep, [created["id"]]) == 1
    assert await poll(poller, ep, timeout=2) == [], "an acknowledged event is never offered again"


async def test_limit_and_priority_order(app_client: Caller) -> None:
    ep = await poll_endpoint(app_client)
    ids = [(await send(app_client, n=i))["id"] for i in range(5)]
    got = await poll(app_client, ep, limit=3)
    assert [e["id"] for e in got] == ids[:3]
    assert [e["id"] for e in await poll(app_client, ep, limit=3)] == ids[3:]


async def test_acknowledged_events_count_as_delivered_in_statistics(app_client: Caller) -> None:
    ep = await poll_endpoint(app_client)
    created = [await send(app_client, n=i) for i in range(3)]
    await poll(app_client, ep)
    assert await ack(app_client, ep, [e["id"] for e in created]) == 3
    status, summary, _ = await app_client.call("GET", f"/api/v1/analytics/summary?endpointId={ep}")
    assert status == 200, summary
    assert (summary["sent"], summary["delivered"], summary["failed"], summary["deadLettered"]) == (3, 3, 0, 0)
    status, stats, _ = await app_client.call("GET", "/api/v1/stats")
    assert status == 200 and stats["lastMinute"]["delivered"] == 3 and stats["queue"]["queued"] == 0
    status, health, _ = await app_client.call("GET", f"/api/v1/analytics/endpoint-health?endpointId={ep}")
    assert status == 200 and health["data"][0]["deliveryRate"] == 1.0


async def test_paused_poll_endpoint_offers_nothing_until_resumed(app_client: Caller) -> None:
    ep = await poll_endpoint(app_client)
    created = await send(app_client)
    assert (await app_client.call("POST", f"/api/v1/endpoints/{ep}/pause"))[0] == 200
    assert await poll(app_client, ep) == []
    assert (await app_client.call("POST", f"/api/v1/endpoints/{ep}/resume"))[0] == 200
    assert [e["id"] for e in await poll(app_client, ep)] == [created["id"]]


async def test_poll_refuses_bad_requests(app_client: Caller, second_key: str) -> None:
    ep = await poll_endpoint(app_client)
    push = await poll_endpoint(app_client, mode="push", types=("other.*",))
    cases = [
        ("", 400), (f"endpoint_id={push}", 409), (f"endpoint_id={ep}&limit=0", 400),
        (f"endpoint_id={ep}&limit=101", 400), (f"endpoint_id={ep}&timeout=61", 400),
        (f"endpoint_id={ep}&timeout=soon", 400), (f"endpoint_id={uuid.uuid4()}", 404), ("endpoint_id=nope", 404),
    ]
    for query, expected in cases:
        status, body, _ = await app_client.call("GET", f"/api/v1/poll?{query}&timeout=0"
                                             if "timeout" not in query else f"/api/v1/poll?{query}")
        assert status == expected, (query, body)
        assert body["code"] == {400: "BAD_REQUEST", 404: "NOT_FOUND", 409: "INVALID_STATE"}[expected]
    status, body, _ = await app_client.call("GET", f"/api/v1/poll?endpoint_id={ep}&timeout=0", key=second_key)
    assert status == 404 and body["code"] == "NOT_FOUND", "another tenant's endpoint does not exist"
    status, _, _ = await app_client.call("GET", f"/api/v1/poll?endpoint_id={ep}", key="mtr_wrong")
    assert status == 401


async def test_ack_validates_and_stays_within_tenant_and_endpoint(app_client: Caller, second_key: str) -> None:
    ep = await poll_endpoint(app_client)
    other = await poll_endpoint(app_client, types=("order.*",))
    created = await send(app_client)   # fans out to both poll endpoints
    for body in ({"endpoint_id": ep}, {"endpoint_id": ep, "event_ids": []},
                 {"endpoint_id": ep, "event_ids": ["x"]}, {"endpoint_id": ep, "event_ids": [created["id"]], "x": 1},
                 {"event_ids": [created["id"]]}, {"endpoint_id": 5, "event_ids": [created["id"]]}):
        status, out, _ = await app_client.call("POST", "/api/v1/poll/ack", body)
        assert status == 400 and out["code"] == "BAD_REQUEST", (body, out)
    status, out, _ = await app_client.call("POST", "/api/v1/poll/ack",
                                        {"endpoint_id": ep, "event_ids": [created["id"]]}, key=second_key)
    assert status == 404, out
    assert await ack(app_client, ep, [created["id"]]) == 1
    status, event, _ = await app_client.call("GET", f"/api/v1/events/{created['id']}")
    assert event["status"] == "queued", "the other endpoint's delivery is still waiting"
    assert [e["id"] for e in await poll(app_client, other)] == [created["id"]]
    assert await ack(app_client, other, [created["id"]]) == 1
    status, event, _ = await app_client.call("GET", f"/api/v1/events/{created['id']}")
    assert event["status"] == "delivered" and event["attempts"] == 2
