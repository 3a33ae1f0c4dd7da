"""Event routes through the real app and a real database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.conftest import Caller


def idem() -> dict[str, str]:
    return {"X-Idempotency-Key": str(uuid.uuid4())}


DIRECT = {"destination": "https://billing.example.com/webhooks", "payload": {"paymentId": "pay_456"}}


async def test_direct_event_201_shape_and_task(app_client: Caller, pool: Any) -> None:
    body = {**DIRECT, "headers": {"X-Custom-Auth": "Bearer token123"}, "maxAttempts": 10, "priority": 1,
            "delaySeconds": 60}
    headers = idem()
    status, ev, _ = await app_client.call("POST", "/api/v1/events", body, headers)
    assert status == 201, ev
    assert set(ev) >= {"id", "idempotencyKey", "destination", "eventType", "status", "attempts", "maxAttempts",
                       "priority", "createdAt"}
    assert ev["idempotencyKey"] == headers["X-Idempotency-Key"]
    assert (ev["status"], ev["attempts"], ev["maxAttempts"], ev["priority"]) == ("queued", 0, 10, 1)
    assert ev["createdAt"].endswith("Z")
    row = await pool.fetchrow("SELECT * FROM tasks WHERE event_id = $1", uuid.UUID(ev["id"]))
    assert row["endpoint_id"] is None and row["priority"] == 1 and row["max_attempts"] == 10
    assert 59 <= (row["next_attempt_at"] - row["created_at"]).total_seconds() <= 61
    payload = await pool.fetchval("SELECT payload FROM events WHERE id = $1", uuid.UUID(ev["id"]))
    assert payload == b'{"paymentId":"pay_456"}'


async def test_max_attempts_clamped_to_25(app_client: Caller) -> None:
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {**DIRECT, "maxAttempts": 1000}, idem())
    assert status == 201 and ev["maxAttempts"] == 25


async def test_fan_out_makes_one_task_per_matching_endpoint(app_client: Caller, pool: Any) -> None:
    ids = {}
    for name, types in (("a", ["order.*"]), ("b", ["*"]), ("c", ["order.created"]), ("d", ["order.updated"]),
                        ("e", ["orders.*"])):
        _, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                         {"url": f"https://{name}.example.com/h", "eventTypes": types,
                                          "maxRetries": 7})
        ids[name] = ep["id"]
    status, ev, _ = await app_client.call("POST", "/api/v1/events",
                                          {"eventType": "order.created", "payload": {"x": 1}}, idem())
    assert status == 201
    rows = await pool.fetch("SELECT endpoint_id, max_attempts, partition FROM tasks WHERE event_id = $1",
                            uuid.UUID(ev["id"]))
    assert {str(r["endpoint_id"]) for r in rows} == {ids["a"], ids["b"], ids["c"]}
    assert {r["max_attempts"] for r in rows} == {7}
    # no subscriber: accepted, nothing to deliver
    await app_client.call("DELETE", f"/api/v1/endpoints/{ids['b']}")
    status, ev2, _ = await app_client.call("POST", "/api/v1/events",
                                           {"eventType": "nobody.listens", "payload": {}}, idem())
    assert status == 201 and ev2["status"] == "delivered"


@pytest.mark.parametrize(("body", "headers", "starts"), [
    (DIRECT, {}, "X-Idempotency-Key"),
    ({"payload": {}}, None, "destination"),
    ({**DIRECT, "eventType": "a.b"}, None, "destination"),
    ({"destination": "https://x.example.com"}, None, "payload"),
    ({**DIRECT, "payload": [1, 2]}, None, "payload"),
    ({**DIRECT, "priority": 11}, None, "priority"),
    ({**DIRECT, "priority": 0}, None, "priority"),
    ({**DIRECT, "delaySeconds": -1}, None, "delaySeconds"),
    ({**DIRECT, "maxAttempts": 0}, None, "maxAttempts"),
    ({**DIRECT, "headers": {"Host": "evil"}}, None, "headers.Host"),
    ({**DIRECT, "destination": "javascript:alert(1)"}, None, "destination"),
    ({**DIRECT, "extra": True}, None, "extra"),
])
async def test_bad_events_answer_400(app_client: Caller, body: dict[str, Any], headers: dict[str, str] | None,
                                     starts: str) -> None:
    status, err, _ = await app_client.call("POST", "/api/v1/events", body, idem() if headers is None else headers)
    assert status == 400, err
    assert err["code"] == "BAD_REQUEST" and err["error"].startswith(starts), err


async def test_duplicate_key_is_409_and_stores_once(app_client: Caller, pool: Any) -> None:
    h = idem()
    s1, first, _ = await app_client.call("POST", "/api/v1/events", DIRECT, h)
    s2, second, _ = await app_client.call("POST", "/api/v1/events", DIRECT, h)
    assert (s1, s2) == (201, 409)
    assert second["code"] == "CONFLICT" and second["eventId"] == first["id"]
    assert await pool.fetchval("SELECT count(*) FROM events") == 1
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1


async def test_list_filters_by_status_and_paginates(app_client: Caller, pool: Any) -> None:
    made = []
    for _ in range(5):
        _, ev, _ = await app_client.call("POST", "/api/v1/events", DIRECT, idem())
        made.append(ev["id"])
    # A retry pending: the task failed, and the roll-up says so on the event.
    await pool.execute("UPDATE tasks SET status = 'failed', attempts = 1 WHERE event_id = $1", uuid.UUID(made[0]))
    await pool.execute("UPDATE events SET status = 'failed' WHERE id = $1", uuid.UUID(made[0]))
    status, page, _ = await app_client.call("GET", "/api/v1/events?status=failed&limit=10")
    assert status == 200 and [e["id"] for e in page["data"]] == [made[0]]
    seen = []
    cursor = None
    while True:
        _, page, _ = await app_client.call("GET", "/api/v1/events?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [e["id"] for e in page["data"]]
        if not page["pagination"]["hasMore"]:
            break
        cursor = page["pagination"]["cursor"]
    assert seen == list(reversed(made))
    status, err, _ = await app_client.call("GET", "/api/v1/events?status=lost")
    assert status == 400 and err["error"].startswith("status")
    status, err, _ = await app_client.call("GET", "/api/v1/events?limit=101")
    assert status == 400


async def test_get_event_and_isolation(app_client: Caller, second_key: str) -> None:
    _, ev, _ = await app_client.call("POST", "/api/v1/events", DIRECT, idem())
    status, got, _ = await app_client.call("GET", f"/api/v1/events/{ev['id']}")
    assert status == 200 and got["payload"] == DIRECT["payload"] and got["deliveryAttempts"] == []
    status, dl, _ = await app_client.call("GET", f"/api/v1/events/{ev['id']}/deliveries")
    assert status == 200 and (dl["deliveries"], dl["count"]) == ([], 0)
    assert [p["waitingReason"] for p in dl["pending"]] == ["queued"] and dl["pending"] == got["pending"]
    for path in (f"/api/v1/events/{ev['id']}", f"/api/v1/events/{ev['id']}/deliveries"):
        status, err, _ = await app_client.call("GET", path, key=second_key)
        assert status == 404 and err["code"] == "NOT_FOUND"
    status, err, _ = await app_client.call("GET", "/api/v1/events", key="")
    assert status == 401 and err["code"] == "UNAUTHORIZED"
