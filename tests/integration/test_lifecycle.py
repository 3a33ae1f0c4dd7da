"""Edit, replay and batch retry of failed/dead events, through the real app and a real database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import orjson
import pytest

from control.policy.partitioning import partition_for, target_key
from control.signalling import WORK_CHANNEL, parse_work_payload
from control.store.queries import q
from tests.integration.conftest import Caller

DEST = "https://billing.example.com/webhooks"


async def direct(app_client: Caller, key: str | None = None, **body: Any) -> dict[str, Any]:
    status, ev, _ = await app_client.call(
        "POST", "/api/v1/events", {"destination": DEST, "payload": {"paymentId": "pay_456"}, **body},
        {"X-Idempotency-Key": str(uuid.uuid4())}, key=key)
    assert status == 201, ev
    return ev


async def end_tasks(pool: Any, event_id: str, status: str = "dead", *, attempts: int = 5,
                    endpoint_id: str | None = None, claim_epoch: int | None = None) -> None:
    """What the engine's writer would record: the event's (or one endpoint's) tasks ended."""
    await pool.execute(
        "UPDATE tasks SET status = $2, attempts = $3, last_error = 'HTTP 500', claim_epoch = $5,"
        " next_attempt_at = now() + interval '1 hour'"
        " WHERE event_id = $1 AND ($4::uuid IS NULL OR endpoint_id = $4)",
        uuid.UUID(event_id), status, attempts, uuid.UUID(endpoint_id) if endpoint_id else None, claim_epoch)
    await pool.execute(q("rollup_events"), [uuid.UUID(event_id)])


async def task_rows(pool: Any, event_id: str) -> list[Any]:
    return list(await pool.fetch(
        "SELECT endpoint_id, status, attempts, claim_epoch, last_error, partition,"
        " next_attempt_at <= now() AS due FROM tasks WHERE event_id = $1 ORDER BY endpoint_id NULLS FIRST",
        uuid.UUID(event_id)))


class Notifications:
    def __init__(self, db_url: str) -> None:
        self.url = db_url
        self.got: list[list[int]] = []
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> Notifications:
        self.conn = await asyncpg.connect(self.url)
        await self.conn.add_listener(WORK_CHANNEL, lambda *a: self.got.append(parse_work_payload(a[3])))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.conn is not None
        await self.conn.close()

    async def settle(self) -> list[list[int]]:
        for _ in range(50):
            if self.got:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        return self.got


@pytest.mark.parametrize("path_suffix", ["", "/replay"])
async def test_only_failed_or_dead_events_change(app_client: Caller, pool: Any, path_suffix: str) -> None:
    ev = await direct(app_client)
    method, body = ("PATCH", {"payload": {"x": 1}}) if not path_suffix else ("POST", None)
    for state in ("queued", "delivering", "delivered"):
        await pool.execute("UPDATE tasks SET status = $2 WHERE event_id = $1", uuid.UUID(ev["id"]), state)
        await pool.execute(q("rollup_events"), [uuid.UUID(ev["id"])])
        status, err, _ = await app_client.call(method, f"/api/v1/events/{ev['id']}{path_suffix}", body)
        assert status == 409 and err["code"] == "INVALID_STATE", err
        assert state in err["error"]
    payload = await pool.fetchval("SELECT payload FROM events WHERE id = $1", uuid.UUID(ev["id"]))
    assert payload == b'{"paymentId":"pay_456"}'


async def test_edit_dead_direct_event_without_replay(app_client: Caller, pool: Any) -> None:
    ev = await direct(app_client)
    await end_tasks(pool, ev["id"], "dead")
    new_dest = "https://new-url.example.com:9443/webhooks"
    payload = {"orderId": "ord_4a8f", "amount": 9900, "corrected": True, "nested": {"b": [1, 2.5, None]}}
    status, out, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}",
                                           {"destination": new_dest, "payload": payload,
                                            "headers": {"X-Fixed": "yes"}})
    assert status == 200, out
    assert out["destination"] == new_dest and out["payload"] == payload and out["headers"] == {"X-Fixed": "yes"}
    assert out["status"] == "dead"
    row = await pool.fetchrow("SELECT payload, destination FROM events WHERE id = $1", uuid.UUID(ev["id"]))
    assert row["payload"] == orjson.dumps(payload)            # exactly the bytes that will be delivered
    [task] = await task_rows(pool, ev["id"])
    assert task["partition"] == partition_for(target_key(None, new_dest), 4096)   # moved with its origin
    assert task["status"] == "dead" and task["attempts"] == 5


async def test_edit_with_replay_requeues_with_reset_attempts(app_client: Caller, pool: Any, db_url: str) -> None:
    ev = await direct(app_client, maxAttempts=3)
    await end_tasks(pool, ev["id"], "failed", attempts=2, claim_epoch=41)
    async with Notifications(db_url) as notes:
        status, out, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}",
                                               {"payload": {"v": 2}, "replay": True})
        assert status == 200, out
        got = await notes.settle()
    assert out["status"] == "queued" and out["attempts"] == 0 and out["payload"] == {"v": 2}
    [task] = await task_rows(pool, ev["id"])
    assert (task["status"], task["attempts"], task["claim_epoch"], task["last_error"]) == ("queued", 0, None, None)
    assert task["due"]
    assert got == [[task["partition"]]]


async def test_fan_out_event_cannot_change_destination(app_client: Caller, pool: Any) -> None:
    await app_client.call("POST", "/api/v1/endpoints", {"url": "https://a.example.com/h", "eventTypes": ["o.*"]})
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "o.created", "payload": {}},
                                          {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201
    await end_tasks(pool, ev["id"], "dead")
    status, err, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}",
                                           {"destination": "https://elsewhere.example.com"})
    assert status == 400 and err["error"].startswith("destination"), err
    status, out, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}", {"payload": {"ok": 1}})
    assert status == 200 and out["payload"] == {"ok": 1}


@pytest.mark.parametrize(("body", "starts"), [
    ({}, "body"), ({"replay": False}, "body"), ({"colour": 1}, "colour"), ({"payload": [1]}, "payload"),
    ({"destination": "ftp://x"}, "destination"), ({"headers": {"Host": "x"}}, "headers.Host"),
    ({"replay": "yes"}, "replay"), ([1], "body"),
])
async def test_bad_edits_answer_400(app_client: Caller, pool: Any, body: Any, starts: str) -> None:
    ev = await direct(app_client)
    await end_tasks(pool, ev["id"], "dead")
    status, err, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}", body)
    assert status == 400 and err["error"].startswith(starts), err


async def test_replay_dead_event_as_is(app_client: Caller, pool: Any, db_url: str) -> None:
    ev = await direct(app_client, headers={"X-Custom": "1"})
    await end_tasks(pool, ev["id"], "dead", attempts=5)
    async with Notifications(db_url) as notes:
        status, out, _ = await app_client.call("POST", f"/api/v1/events/{ev['id']}/replay")
        got = await notes.settle()
    assert status == 200, out
    assert out["status"] == "queued" and out["attempts"] == 0
    assert out["payload"] == {"paymentId": "pay_456"} and out["headers"] == {"X-Custom": "1"}
    [task] = await task_rows(pool, ev["id"])
    assert task["status"] == "queued" and task["attempts"] == 0 and task["due"]
    assert got == [[task["partition"]]]
    # queued now: a second replay is refused
    status, err, _ = await app_client.call("POST", f"/api/v1/events/{ev['id']}/replay")
    assert status == 409 and err["code"] == "INVALID_STATE"


async def test_fan_out_replay_requeues_only_undelivered_live_endpoints(app_client: Caller, pool: Any) -> None:
    ids = []
    for name in ("ok", "dead", "gone"):
        status, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                              {"url": f"https://{name}.example.com/h", "eventTypes": ["pay.*"]})
        assert status == 201
        ids.append(ep["id"])
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "pay.done", "payload": {}},
                                          {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201
    await end_tasks(pool, ev["id"], "delivered", attempts=1, endpoint_id=ids[0])
    await end_tasks(pool, ev["id"], "dead", attempts=5, endpoint_id=ids[1])
    await end_tasks(pool, ev["id"], "failed", attempts=2, endpoint_id=ids[2])
    assert (await app_client.call("DELETE", f"/api/v1/endpoints/{ids[2]}"))[0] == 204   # its task ends dead
    status, before, _ = await app_client.call("GET", f"/api/v1/events/{ev['id']}")
    assert before["status"] == "dead"
    status, out, _ = await app_client.call("POST", f"/api/v1/events/{ev['id']}/replay")
    assert status == 200, out
    assert out["status"] == "queued" and out["attempts"] == 1 + 0 + 2   # ended tasks keep their attempts
    by_ep = {str(r["endpoint_id"]): r for r in await task_rows(pool, ev["id"])}
    assert by_ep[ids[0]]["status"] == "delivered"
    assert (by_ep[ids[1]]["status"], by_ep[ids[1]]["attempts"]) == ("queued", 0)
    assert by_ep[ids[2]]["status"] == "dead"


async def test_replay_with_only_deleted_endpoints_is_invalid_state(app_client: Caller, pool: Any) -> None:
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                          {"url": "https://x.example.com/h", "eventTypes": ["z.*"]})
    _, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "z.z", "payload": {}},
                                     {"X-Idempotency-Key": str(uuid.uuid4())})
    await app_client.call("DELETE", f"/api/v1/endpoints/{ep['id']}")
    await pool.execute(q("rollup_events"), [uuid.UUID(ev["id"])])
    status, err, _ = await app_client.call("POST", f"/api/v1/events/{ev['id']}/replay")
    assert status == 409 and err["code"] == "INVALID_STATE" and "deleted" in err["error"]


async def test_lifecycle_is_tenant_scoped_and_ids_are_opaque(app_client: Caller, pool: Any,
                                                             second_key: str) -> None:
    ev = await direct(app_client)
    await end_tasks(pool, ev["id"], "dead")
    for method, path, body in (("PATCH", f"/api/v1/events/{ev['id']}", {"payload": {}}),
                               ("POST", f"/api/v1/events/{ev['id']}/replay", None)):
        status, err, _ = await app_client.call(method, path, body, key=second_key)
        assert status == 404 and err["code"] == "NOT_FOUND"
    for bad in ("nope", "00000000-0000-0000-0000-000000000000"):
        status, _, _ = await app_client.call("POST", f"/api/v1/events/{bad}/replay")
        assert status == 404
    [task] = await task_rows(pool, ev["id"])
    assert task["status"] == "dead"


async def test_batch_retry_by_ids_ignores_others_and_other_states(app_client: Caller, pool: Any,
                                                                  second_key: str, db_url: str) -> None:
    dead, failed, delivered = await direct(app_client), await direct(app_client), await direct(app_client)
    theirs = await direct(app_client, key=second_key)
    await end_tasks(pool, dead["id"], "dead")
    await end_tasks(pool, failed["id"], "failed", attempts=1)
    await end_tasks(pool, delivered["id"], "delivered", attempts=1)
    await end_tasks(pool, theirs["id"], "dead")
    ids = [dead["id"], delivered["id"], theirs["id"], failed["id"], dead["id"], str(uuid.uuid4())]
    async with Notifications(db_url) as notes:
        status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"eventIds": ids})
        got = await notes.settle()
    assert status == 200, out
    assert out == {"retried": 2, "eventIds": [dead["id"], failed["id"]]}
    assert len(got) == 1
    status, theirs_now, _ = await app_client.call("GET", f"/api/v1/events/{theirs['id']}", key=second_key)
    assert theirs_now["status"] == "dead"
    status, mine, _ = await app_client.call("GET", f"/api/v1/events/{delivered['id']}")
    assert mine["status"] == "delivered"


async def test_batch_retry_by_status_oldest_first_with_limit(app_client: Caller, pool: Any) -> None:
    made = [await direct(app_client) for _ in range(4)]
    for ev in made[:3]:
        await end_tasks(pool, ev["id"], "failed", attempts=1)
    await end_tasks(pool, made[3]["id"], "dead")
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"status": "failed", "limit": 2})
    assert status == 200 and out == {"retried": 2, "eventIds": [made[0]["id"], made[1]["id"]]}
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"status": "failed"})
    assert out == {"retried": 1, "eventIds": [made[2]["id"]]}
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"status": "dead", "limit": 100})
    assert out == {"retried": 1, "eventIds": [made[3]["id"]]}
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"status": "dead"})
    assert out == {"retried": 0, "eventIds": []}


async def test_batch_retry_by_endpoint_requeues_only_that_endpoints_deliveries(app_client: Caller,
                                                                               pool: Any) -> None:
    eps = []
    for name in ("a", "b"):
        _, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                         {"url": f"https://{name}.example.com/h", "eventTypes": ["inv.*"]})
        eps.append(ep["id"])
    events = []
    for _ in range(3):
        _, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "inv.paid", "payload": {}},
                                         {"X-Idempotency-Key": str(uuid.uuid4())})
        await end_tasks(pool, ev["id"], "dead")
        events.append(ev["id"])
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"endpointId": eps[0], "limit": 2})
    assert status == 200 and out == {"retried": 2, "eventIds": events[:2]}
    for ev_id in events[:2]:
        by_ep = {str(r["endpoint_id"]): r["status"] for r in await task_rows(pool, ev_id)}
        assert by_ep == {eps[0]: "queued", eps[1]: "dead"}
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry",
                                           {"endpointId": eps[0], "status": "failed"})
    assert out == {"retried": 0, "eventIds": []}


async def test_batch_retry_by_endpoint_of_another_tenant_retries_nothing(app_client: Caller, pool: Any,
                                                                         second_key: str) -> None:
    _, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                     {"url": "https://a.example.com/h", "eventTypes": ["inv.*"]})
    _, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "inv.paid", "payload": {}},
                                     {"X-Idempotency-Key": str(uuid.uuid4())})
    await end_tasks(pool, ev["id"], "dead")
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"endpointId": ep["id"]},
                                           key=second_key)
    assert status == 200 and out == {"retried": 0, "eventIds": []}
    assert [r["status"] for r in await task_rows(pool, ev["id"])] == ["dead"]


@pytest.mark.parametrize(("body", "starts"), [
    ({}, "body"), ({"status": "queued"}, "status"), ({"status": "failed", "limit": 1001}, "limit"),
    ({"status": "failed", "limit": 0}, "limit"), ({"eventIds": []}, "eventIds"),
    ({"eventIds": ["evt_1"]}, "eventIds[0]"),
    ({"eventIds": [str(uuid.uuid4())], "status": "dead"}, "eventIds"), ({"endpointId": "ep_uuid"}, "endpointId"),
    ({"eventIds": [str(uuid.uuid4())] * 1001}, "eventIds"), ({"colour": 1}, "colour"),
])
async def test_bad_batch_retry_answers_400(app_client: Caller, body: Any, starts: str) -> None:
    status, err, _ = await app_client.call("POST", "/api/v1/events/batch/retry", body)
    assert status == 400 and err["error"].startswith(starts), err


async def test_lifecycle_respects_project_scope(app_client: Caller, pool: Any) -> None:
    client_id = uuid.UUID(app_client.client_id)
    p1, p2 = uuid.uuid4(), uuid.uuid4()
    for p in (p1, p2):
        await pool.execute("INSERT INTO projects (id, client_id, name) VALUES ($1, $2, 'p')", p, client_id)
    status, ev, _ = await app_client.call(
        "POST", "/api/v1/events", {"destination": DEST, "payload": {}},
        {"X-Idempotency-Key": str(uuid.uuid4()), "X-Project-ID": str(p1)})
    assert status == 201
    await end_tasks(pool, ev["id"], "dead")
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"status": "dead"},
                                           {"X-Project-ID": str(p2)})
    assert out["retried"] == 0
    status, _, _ = await app_client.call("POST", f"/api/v1/events/{ev['id']}/replay", None, {"X-Project-ID": str(p2)})
    assert status == 404
    status, out, _ = await app_client.call("POST", "/api/v1/events/batch/retry", {"eventIds": [ev["id"]]},
                                           {"X-Project-ID": str(p1)})
    assert out["retried"] == 1


async def test_edit_body_is_size_limited(app_client: Caller, pool: Any) -> None:
    ev = await direct(app_client)
    await end_tasks(pool, ev["id"], "dead")
    status, err, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}", {"payload": {"x": "y" * 70000}})
    assert status == 413 and err["code"] == "PAYLOAD_TOO_LARGE"


async def test_edited_payload_of_a_typed_event_must_fit_its_schema(app_client: Caller, pool: Any) -> None:
    status, _, _ = await app_client.call("POST", "/api/v1/event-types", {
        "name": "order.created", "schema": {"type": "object", "required": ["amount"],
                                            "properties": {"amount": {"type": "integer"}}}})
    assert status == 201
    await app_client.call("POST", "/api/v1/endpoints", {"url": "https://a.example.com/h", "eventTypes": ["order.*"]})
    status, ev, _ = await app_client.call("POST", "/api/v1/events",
                                          {"eventType": "order.created", "payload": {"amount": 1}},
                                          {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, ev
    await end_tasks(pool, ev["id"], "dead")
    status, err, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}", {"payload": {"amount": "x"}})
    assert status == 400 and err["error"].startswith("payload.amount"), err
    status, out, _ = await app_client.call("PATCH", f"/api/v1/events/{ev['id']}", {"payload": {"amount": 2}})
    assert status == 200 and out["payload"] == {"amount": 2}
