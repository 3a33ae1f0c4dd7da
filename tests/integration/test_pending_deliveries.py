"""An event says why each undelivered delivery waits: `pending` on GET /api/v1/events/{id} and on
GET /api/v1/events/{id}/deliveries, through the real app and a real database. No shard runs here,
so each state is set up in the rows the engine would have written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema

from control.jsonfmt import iso
from control.store.queries import q
from tests.integration.conftest import Caller

DEST = "https://billing.example.com/webhooks"


async def create(app_client: Caller, body: dict[str, Any], headers: dict[str, str] | None = None,
                 key: str | None = None) -> dict[str, Any]:
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"payload": {"orderId": "o-1"}, **body},
                                          {"X-Idempotency-Key": str(uuid.uuid4()), **(headers or {})}, key=key)
    assert status == 201, ev
    return ev


async def endpoint(app_client: Caller, **extra: Any) -> str:
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", {
        "url": f"https://{uuid.uuid4().hex[:8]}.example.com/hooks", "eventTypes": ["order.*"], **extra})
    assert status == 201, ep
    return str(ep["id"])


async def set_task(pool: Any, event_id: str, *, status: str, attempts: int = 0,
                   due_in: timedelta = timedelta(0), endpoint_id: str | None = None) -> None:
    """What the engine's writer records for a delivery (all of the event's, or one endpoint's)."""
    await pool.execute(
        "UPDATE tasks SET status = $2, attempts = $3, next_attempt_at = now() + $4"
        " WHERE event_id = $1 AND ($5::uuid IS NULL OR endpoint_id = $5)",
        uuid.UUID(event_id), status, attempts, due_in, uuid.UUID(endpoint_id) if endpoint_id else None)
    await pool.execute(q("rollup_events"), [uuid.UUID(event_id)])


async def pending(app_client: Caller, event_id: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The event's `pending`, checked to be the same on both reads."""
    status, event, _ = await app_client.call("GET", f"/api/v1/events/{event_id}", headers=headers)
    assert status == 200, event
    status, listed, _ = await app_client.call("GET", f"/api/v1/events/{event_id}/deliveries", headers=headers)
    assert status == 200, listed
    assert listed["count"] == len(listed["deliveries"]) and listed["deliveries"] == event["deliveryAttempts"]
    assert listed["pending"] == event["pending"]
    return list(event["pending"])


def at(value: str | None) -> datetime:
    assert value is not None and value.endswith("Z")
    return datetime.fromisoformat(value)


async def test_a_due_direct_delivery_is_queued_with_its_destination(app_client: Caller) -> None:
    ev = await create(app_client, {"destination": DEST})
    [p] = await pending(app_client, ev["id"])
    assert set(p) == {"endpointId", "destination", "status", "attempts", "nextAttemptAt", "waitingReason"}
    assert (p["endpointId"], p["destination"], p["status"], p["attempts"], p["waitingReason"]) == (
        None, DEST, "queued", 0, "queued")
    assert at(p["nextAttemptAt"]) <= datetime.now(UTC)


async def test_delay_retry_backoff_and_in_flight(app_client: Caller, pool: Any) -> None:
    delayed = await create(app_client, {"destination": DEST, "delaySeconds": 600})
    [p] = await pending(app_client, delayed["id"])
    assert (p["waitingReason"], p["status"], p["attempts"]) == ("delayed", "queued", 0)
    assert at(p["nextAttemptAt"]) == at(delayed["createdAt"]) + timedelta(seconds=600)

    retrying = await create(app_client, {"destination": DEST})
    await set_task(pool, retrying["id"], status="failed", attempts=2, due_in=timedelta(hours=1))
    [p] = await pending(app_client, retrying["id"])
    assert (p["waitingReason"], p["status"], p["attempts"]) == ("retry_scheduled", "failed", 2)
    assert timedelta(minutes=59) < at(p["nextAttemptAt"]) - datetime.now(UTC) <= timedelta(hours=1)

    # a failed delivery whose backoff has run out is due again: it waits for a shard
    await set_task(pool, retrying["id"], status="failed", attempts=2, due_in=timedelta(seconds=-5))
    [p] = await pending(app_client, retrying["id"])
    assert (p["waitingReason"], p["status"]) == ("queued", "failed")

    await set_task(pool, retrying["id"], status="delivering", attempts=2)
    [p] = await pending(app_client, retrying["id"])
    assert (p["waitingReason"], p["status"], p["nextAttemptAt"]) == ("in_flight", "delivering", None)


async def test_each_endpoint_of_a_fan_out_says_what_holds_it(app_client: Caller, pool: Any) -> None:
    plain = await endpoint(app_client)
    paused = await endpoint(app_client)
    assert (await app_client.call("POST", f"/api/v1/endpoints/{paused}/pause"))[0] == 200
    limited = await endpoint(app_client, rateLimitPerSec=10)
    polled = await endpoint(app_client, deliveryMode="poll")
    tripped = await endpoint(app_client, circuitResetMs=300_000)
    probing = await endpoint(app_client)
    delivered = await endpoint(app_client)
    dead = await endpoint(app_client)
    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    await pool.execute("UPDATE endpoints SET circuit_state = 'open', circuit_opened_at = $2 WHERE id = $1",
                       uuid.UUID(tripped), opened)
    await pool.execute("UPDATE endpoints SET circuit_state = 'half_open', circuit_opened_at = $2 WHERE id = $1",
                       uuid.UUID(probing), opened - timedelta(hours=1))
    ev = await create(app_client, {"eventType": "order.created"})
    await set_task(pool, ev["id"], status="delivered", attempts=1, endpoint_id=delivered)
    await set_task(pool, ev["id"], status="dead", attempts=5, endpoint_id=dead)

    got = {p["endpointId"]: p for p in await pending(app_client, ev["id"])}
    assert {k: p["waitingReason"] for k, p in got.items()} == {
        plain: "queued", paused: "endpoint_paused", limited: "rate_limited", polled: "awaiting_poll",
        tripped: "circuit_open", probing: "circuit_open"}, "delivered and dead deliveries are not pending"
    assert all(p["destination"] is None and p["status"] == "queued" for p in got.values())
    assert got[paused]["nextAttemptAt"] is None
    # the breaker lets a probe through circuitResetMs after it opened, not before the task is due
    assert got[tripped]["nextAttemptAt"] == iso(opened + timedelta(milliseconds=300_000))
    assert at(got[probing]["nextAttemptAt"]) <= datetime.now(UTC)

    # a retry scheduled after the breaker's reset waits for itself
    await set_task(pool, ev["id"], status="failed", attempts=1, due_in=timedelta(hours=2), endpoint_id=tripped)
    [p] = [p for p in await pending(app_client, ev["id"]) if p["endpointId"] == tripped]
    assert p["waitingReason"] == "circuit_open"
    assert at(p["nextAttemptAt"]) - datetime.now(UTC) > timedelta(hours=1, minutes=59)


async def test_a_handed_out_poll_delivery_is_offered_again_when_it_becomes_visible(app_client: Caller,
                                                                                  pool: Any) -> None:
    polled = await endpoint(app_client, deliveryMode="poll")
    ev = await create(app_client, {"eventType": "order.created"})
    status, out, _ = await app_client.call("GET", f"/api/v1/poll?endpoint_id={polled}&timeout=0")
    assert status == 200 and [e["id"] for e in out["data"]] == [ev["id"]]
    [p] = await pending(app_client, ev["id"])
    assert p["waitingReason"] == "awaiting_poll"
    assert at(p["nextAttemptAt"]) > datetime.now(UTC) + timedelta(seconds=5)      # the visibility timeout


async def test_another_tenants_or_projects_event_is_404(app_client: Caller, pool: Any, second_key: str) -> None:
    ev = await create(app_client, {"destination": DEST})
    for path in (f"/api/v1/events/{ev['id']}", f"/api/v1/events/{ev['id']}/deliveries"):
        status, err, _ = await app_client.call("GET", path, key=second_key)
        assert status == 404 and err["code"] == "NOT_FOUND", err
    p1, p2 = uuid.uuid4(), uuid.uuid4()
    for p in (p1, p2):
        await pool.execute("INSERT INTO projects (id, client_id, name) VALUES ($1, $2, 'p')", p,
                           uuid.UUID(app_client.client_id))
    scoped = await create(app_client, {"destination": DEST}, {"X-Project-ID": str(p1)})
    assert [p["waitingReason"] for p in await pending(app_client, scoped["id"], {"X-Project-ID": str(p1)})] == [
        "queued"]
    for path in (f"/api/v1/events/{scoped['id']}", f"/api/v1/events/{scoped['id']}/deliveries"):
        status, err, _ = await app_client.call("GET", path, headers={"X-Project-ID": str(p2)})
        assert status == 404 and err["code"] == "NOT_FOUND", err


async def test_a_delivered_event_has_nothing_pending(app_client: Caller, pool: Any) -> None:
    ev = await create(app_client, {"destination": DEST})
    await set_task(pool, ev["id"], status="delivered", attempts=1)
    assert await pending(app_client, ev["id"]) == []
    unrouted = await create(app_client, {"eventType": "nobody.listens"})
    assert unrouted["status"] == "delivered" and await pending(app_client, unrouted["id"]) == []


async def test_the_pending_query_is_scoped_to_the_caller(app_client: Caller, pool: Any) -> None:
    ev = await create(app_client, {"destination": DEST})
    eid, cid = uuid.UUID(ev["id"]), uuid.UUID(app_client.client_id)
    assert len(await pool.fetch(q("event_pending_tasks"), eid, cid, None)) == 1
    assert await pool.fetch(q("event_pending_tasks"), eid, uuid.uuid4(), None) == []
    assert await pool.fetch(q("event_pending_tasks"), eid, cid, uuid.uuid4()) == []


def json_schema(node: Any, components: dict[str, Any]) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: `$ref`s inlined, `nullable` as a null type."""
    if isinstance(node, list):
        return [json_schema(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return json_schema(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {k: json_schema(v, components) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


async def test_both_answers_match_the_documented_schema(app_client: Caller, pool: Any) -> None:
    status, doc, _ = await app_client.call("GET", "/openapi.json")
    assert status == 200
    components = doc["components"]["schemas"]
    await endpoint(app_client, rateLimitPerSec=3)
    ev = await create(app_client, {"eventType": "order.created"})
    direct = await create(app_client, {"destination": DEST, "delaySeconds": 30})
    for event_id in (ev["id"], direct["id"]):
        for path in (f"/api/v1/events/{event_id}", f"/api/v1/events/{event_id}/deliveries"):
            schema = doc["paths"][path.replace(event_id, "{id}")]["get"]["responses"]["200"]["content"][
                "application/json"]["schema"]
            status, body, _ = await app_client.call("GET", path)
            assert status == 200 and len(body["pending"]) == 1
            resolved = json_schema(schema, components)
            assert "pending" in resolved["required"]
            jsonschema.validate(body, resolved)
