"""POST /api/v1/events/batch through the real app and a real database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from blacksheep import Content

from control.policy.partitioning import partition_for, target_key
from control.signalling import WORK_CHANNEL, WorkSignal, parse_work_payload
from tests.integration.conftest import Caller

BATCH = "/api/v1/events/batch"


def item(n: int, dest: str = "https://api.example.com/webhooks", **extra: Any) -> dict[str, Any]:
    return {"idempotencyKey": f"order-{n}-{uuid.uuid4().hex[:8]}", "destination": dest,
            "payload": {"orderId": str(n), "amount": n * 100}, **extra}


async def counts(pool: Any) -> tuple[int, int]:
    return (await pool.fetchval("SELECT count(*) FROM events"), await pool.fetchval("SELECT count(*) FROM tasks"))


async def test_batch_stores_events_and_tasks_like_single_creates(app_client: Caller, pool: Any) -> None:
    events = [item(1), item(2, "https://other.example.com:8443/in"),
              item(3, headers={"X-Custom": "value"}, maxAttempts=10)]
    status, body, _ = await app_client.call("POST", BATCH, {"events": events})
    assert status == 201, body
    assert body["count"] == 3 and len(body["events"]) == 3
    for out in body["events"]:
        assert set(out) == {"id", "status", "createdAt"}
        assert out["status"] == "queued" and out["createdAt"].endswith("Z")
    rows = {r["id"]: r for r in await pool.fetch(
        "SELECT e.id, e.idempotency_key, e.destination, e.payload, e.headers, e.max_attempts, e.priority, "
        "e.event_type, e.status, t.partition, t.max_attempts AS task_max, t.priority AS task_priority, "
        "t.next_attempt_at <= now() AS due, t.endpoint_id FROM events e JOIN tasks t ON t.event_id = e.id")}
    assert len(rows) == 3
    for sent, out in zip(events, body["events"], strict=True):   # response order = request order
        row = rows[uuid.UUID(out["id"])]
        assert row["idempotency_key"] == sent["idempotencyKey"] and row["destination"] == sent["destination"]
        assert row["payload"] == orjson.dumps(sent["payload"])
        assert row["headers"] == sent.get("headers", {})
        assert row["max_attempts"] == row["task_max"] == sent.get("maxAttempts", 5)
        assert row["priority"] == row["task_priority"] == 5 and row["event_type"] is None
        assert row["partition"] == partition_for(target_key(None, sent["destination"]), 4096)
        assert row["due"] and row["endpoint_id"] is None and row["status"] == "queued"
    # the events read back like any other
    status, ev, _ = await app_client.call("GET", f"/api/v1/events/{body['events'][2]['id']}")
    assert status == 200 and ev["payload"] == events[2]["payload"] and ev["headers"] == {"X-Custom": "value"}


async def test_batch_sends_one_notify_naming_its_distinct_partitions(app_client: Caller, db_url: str) -> None:
    listener = await asyncpg.connect(db_url)
    got: list[str] = []
    await listener.add_listener(WORK_CHANNEL, lambda *args: got.append(args[3]))
    try:
        dests = ["https://a.example.com/x", "https://a.example.com/y", "https://b.example.com/z"]
        status, _, _ = await app_client.call("POST", BATCH, {"events": [item(i, d) for i, d in enumerate(dests)]})
        assert status == 201
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    finally:
        await listener.close()
    expected = sorted({partition_for(target_key(None, d), 4096) for d in dests})
    assert len(got) == 1 and parse_work_payload(got[0]) == expected


@pytest.mark.parametrize(("body", "message"), [
    ({"events": []}, "events: must not be empty"),
    ({}, "events: required"),
    ({"events": {"a": 1}}, "events: required"),
    ([1, 2], "body: expected a JSON object"),
    ({"events": [item(0), item(1), {"idempotencyKey": "k", "payload": {}}]}, "events[2].destination: required"),
    ({"events": [item(0), {"destination": "https://a.example.com", "payload": {}}]},
     "events[1].idempotencyKey: required"),
    ({"events": [{**item(0), "idempotencyKey": ""}]}, "events[0].idempotencyKey: must not be empty"),
    ({"events": [{**item(0), "idempotencyKey": "k" * 256}]}, "events[0].idempotencyKey"),
    ({"events": [{k: v for k, v in item(0).items() if k != "payload"}]}, "events[0].payload: required"),
    ({"events": [item(0, payload=[1])]}, "events[0].payload: expected a JSON object"),
    ({"events": [item(0, eventType="order.created")]}, "events[0].eventType"),
    ({"events": [item(0), item(1, delaySeconds=60)]}, "events[1].delaySeconds"),
    ({"events": [item(0, priority=1)]}, "events[0].priority"),
    ({"events": [item(0, destination="ftp://x.example.com")]}, "events[0].destination"),
    ({"events": [item(0, headers={"Host": "evil"})]}, "events[0].headers.Host"),
    ({"events": [item(0, maxAttempts=0)]}, "events[0].maxAttempts"),
    ({"events": [item(0, colour="red")]}, "events[0].colour: unknown field"),
    ({"events": [7]}, "events[0]: expected a JSON object"),
    ({"events": [item(0)], "extra": 1}, "extra: unknown field"),
])
async def test_invalid_batches_answer_validation_error_and_store_nothing(
        app_client: Caller, pool: Any, body: Any, message: str) -> None:
    status, err, _ = await app_client.call("POST", BATCH, body)
    assert status == 400, err
    assert err["code"] == "VALIDATION_ERROR" and err["error"].startswith(message), err
    assert await counts(pool) == (0, 0)


async def test_defaults_spelled_out_are_accepted(app_client: Caller) -> None:
    status, body, _ = await app_client.call("POST", BATCH, {"events": [item(0, priority=5, delaySeconds=0)]})
    assert status == 201, body


async def test_101_events_is_batch_too_large(app_client: Caller, pool: Any) -> None:
    status, err, _ = await app_client.call("POST", BATCH, {"events": [item(i) for i in range(101)]})
    assert status == 400 and err["code"] == "BATCH_TOO_LARGE", err
    assert await counts(pool) == (0, 0)
    status, body, _ = await app_client.call("POST", BATCH, {"events": [item(i) for i in range(100)]})
    assert status == 201 and body["count"] == 100
    assert await counts(pool) == (100, 100)


async def test_one_existing_key_stores_nothing_and_names_it(app_client: Caller, pool: Any) -> None:
    taken = item(0)
    status, _, _ = await app_client.call(
        "POST", "/api/v1/events", {"destination": taken["destination"], "payload": {"first": True}},
        {"X-Idempotency-Key": taken["idempotencyKey"]})
    assert status == 201
    status, err, _ = await app_client.call("POST", BATCH, {"events": [item(1), taken, item(2)]})
    assert status == 409, err
    assert err["code"] == "DUPLICATE_EVENT" and err["duplicateKeys"] == [taken["idempotencyKey"]]
    assert taken["idempotencyKey"] in err["error"]
    assert await counts(pool) == (1, 1)
    assert await pool.fetchval("SELECT payload FROM events") == b'{"first":true}'


async def test_key_repeated_inside_the_batch_stores_nothing(app_client: Caller, pool: Any) -> None:
    a, b = item(0), item(1)
    status, err, _ = await app_client.call("POST", BATCH, {"events": [a, b, {**item(2), "idempotencyKey": a[
        "idempotencyKey"]}]})
    assert status == 409 and err["code"] == "DUPLICATE_EVENT" and err["duplicateKeys"] == [a["idempotencyKey"]]
    assert await counts(pool) == (0, 0)


async def test_keys_are_per_tenant(app_client: Caller, second_key: str, pool: Any) -> None:
    events = [item(0), item(1)]
    assert (await app_client.call("POST", BATCH, {"events": events}))[0] == 201
    status, _, _ = await app_client.call("POST", BATCH, {"events": events}, key=second_key)
    assert status == 201
    assert await counts(pool) == (4, 4)


async def test_batch_requires_write_scope(app_client: Caller, pool: Any) -> None:
    from control.services.keys import create_key

    reader = await create_key(pool, uuid.UUID(app_client.client_id), "reader", scopes=["events:read"])
    status, err, _ = await app_client.call("POST", BATCH, {"events": [item(0)]}, key=reader.key)
    assert status == 403, err
    status, _, _ = await app_client.call("POST", BATCH, {"events": [item(0)]}, key="mtr_nope")
    assert status == 401


async def test_oversized_batch_body_is_413(app_client: Caller, pool: Any) -> None:
    big = {"events": [item(i, payload={"blob": "x" * 1000}) for i in range(70)]}   # > the 64 KiB test limit
    status, err, _ = await app_client.call("POST", BATCH, big)
    assert status == 413 and err["code"] == "PAYLOAD_TOO_LARGE"
    assert await counts(pool) == (0, 0)


async def test_single_creates_wake_their_partitions(app_client: Caller, db_url: str) -> None:
    """Every stored event's partition is announced, after commit."""
    listener = await asyncpg.connect(db_url)
    got: list[int] = []
    notifies = 0

    def on_work(*args: Any) -> None:
        nonlocal notifies
        notifies += 1
        got.extend(parse_work_payload(args[3]))

    await listener.add_listener(WORK_CHANNEL, on_work)
    dests = [f"https://h{i}.example.com/hook" for i in range(30)]
    try:
        results = await asyncio.gather(*(
            app_client.call("POST", "/api/v1/events", {"destination": d, "payload": {"n": i}},
                            {"X-Idempotency-Key": str(uuid.uuid4())}) for i, d in enumerate(dests)))
        assert all(status == 201 for status, _, _ in results)
        expected = {partition_for(target_key(None, d), 4096) for d in dests}
        for _ in range(100):
            if expected <= set(got):
                break
            await asyncio.sleep(0.02)
    finally:
        await listener.close()
    assert set(got) == expected and 1 <= notifies <= len(dests)


async def test_wake_ups_noted_together_go_out_as_one_notify(pool: Any, db_url: str) -> None:
    listener = await asyncpg.connect(db_url)
    got: list[str] = []
    await listener.add_listener(WORK_CHANNEL, lambda *args: got.append(args[3]))
    try:
        signal = WorkSignal(pool)
        signal.wake([7])
        signal.wake([3, 7])
        signal.wake([])
        signal.wake(range(100, 4096))     # too many for one payload: split, nothing lost
        for _ in range(100):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
    finally:
        await listener.close()
    assert len(got) == 3
    assert [x for p in got for x in parse_work_payload(p)] == [3, 7, *range(100, 4096)]


async def test_stopping_the_api_sends_pending_wake_ups(db_url: str, pool: Any) -> None:
    from blacksheep.testing import TestClient

    from api.app import create_app
    from control.services.keys import create_client, create_key
    from control.settings import load_settings

    app = create_app(load_settings(env={"DATABASE_URL": db_url}))
    await app.start()
    client = await create_client(pool, "tenant-stop")
    key = (await create_key(pool, client["id"], "admin")).key
    listener = await asyncpg.connect(db_url)
    got: list[str] = []
    await listener.add_listener(WORK_CHANNEL, lambda *args: got.append(args[3]))
    try:
        resp = await TestClient(app).post(
            "/api/v1/events", headers={"X-API-Key": key, "X-Idempotency-Key": "stop-1"},
            content=Content(b"application/json", orjson.dumps({"destination": "https://s.example.com/h",
                                                               "payload": {}})))
        assert resp.status == 201
        await app.stop()          # at once: the coalescing window has not passed yet
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.02)
    finally:
        await listener.close()
    assert [parse_work_payload(p) for p in got] == [[partition_for(target_key(None, "https://s.example.com/h"), 4096)]]
