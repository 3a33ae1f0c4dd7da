"""Typed single ingest reads its schema and subscribers from the worker's routing cache (one round
trip); every change to endpoints or event types must show in the very next event."""

from __future__ import annotations

import uuid
from typing import Any

from tests.integration.conftest import Caller


def idem() -> dict[str, str]:
    return {"X-Idempotency-Key": str(uuid.uuid4())}


async def _targets(app_client: Caller, pool: Any, event_type: str, payload: dict[str, Any]) -> tuple[int, set[str]]:
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": event_type, "payload": payload},
                                          idem())
    if status != 201:
        return status, set()
    rows = await pool.fetch("SELECT endpoint_id FROM tasks WHERE event_id = $1", uuid.UUID(ev["id"]))
    return status, {str(r["endpoint_id"]) for r in rows}


async def _endpoint(app_client: Caller, name: str, types: list[str]) -> str:
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                          {"url": f"https://{name}.example.com/h", "eventTypes": types})
    assert status == 201, ep
    return str(ep["id"])


async def test_subscriber_changes_show_in_the_next_event(app_client: Caller, pool: Any) -> None:
    kind = f"route{uuid.uuid4().hex[:8]}"
    a = await _endpoint(app_client, "ra", [f"{kind}.*"])
    assert await _targets(app_client, pool, f"{kind}.made", {"n": 1}) == (201, {a})
    assert await _targets(app_client, pool, f"{kind}.made", {"n": 2}) == (201, {a})   # cached now
    b = await _endpoint(app_client, "rb", [f"{kind}.made"])
    assert await _targets(app_client, pool, f"{kind}.made", {"n": 3}) == (201, {a, b})
    status, _, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{a}", {"eventTypes": ["other.*"]})
    assert status == 200
    assert await _targets(app_client, pool, f"{kind}.made", {"n": 4}) == (201, {b})
    status, _, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{b}",
                                         {"filter": [{"field": "$.data.n", "operator": "gt", "value": 10}]})
    assert status == 200
    assert await _targets(app_client, pool, f"{kind}.made", {"n": 5}) == (201, set())
    assert await _targets(app_client, pool, f"{kind}.made", {"n": 11}) == (201, {b})
    status, _, _ = await app_client.call("DELETE", f"/api/v1/endpoints/{b}")
    assert status in (200, 204)
    assert await _targets(app_client, pool, f"{kind}.made", {"n": 12}) == (201, set())


async def test_schema_changes_show_in_the_next_event(app_client: Caller, pool: Any) -> None:
    kind = f"schema{uuid.uuid4().hex[:8]}.made"
    a = await _endpoint(app_client, "sa", [kind])
    assert await _targets(app_client, pool, kind, {"amount": "x"}) == (201, {a})
    assert await _targets(app_client, pool, kind, {"amount": "y"}) == (201, {a})      # cached: no schema
    status, et, _ = await app_client.call("POST", "/api/v1/event-types", {
        "name": kind, "schema": {"type": "object", "properties": {"amount": {"type": "integer"}},
                                 "required": ["amount"]}})
    assert status == 201, et
    assert (await _targets(app_client, pool, kind, {"amount": "x"}))[0] == 400
    assert await _targets(app_client, pool, kind, {"amount": 5}) == (201, {a})
    status, _, _ = await app_client.call("PUT", f"/api/v1/event-types/{et['id']}", {
        "schema": {"type": "object", "properties": {"amount": {"type": "string"}}}})
    assert status == 200
    assert (await _targets(app_client, pool, kind, {"amount": 5}))[0] == 400
    assert await _targets(app_client, pool, kind, {"amount": "5"}) == (201, {a})
    status, _, _ = await app_client.call("DELETE", f"/api/v1/event-types/{et['id']}")
    assert status in (200, 204)
    assert await _targets(app_client, pool, kind, {"amount": 5}) == (201, {a})


async def test_duplicate_key_is_still_a_conflict_with_a_warm_cache(app_client: Caller) -> None:
    kind = f"dup{uuid.uuid4().hex[:8]}.made"
    await _endpoint(app_client, "da", [kind])
    headers = idem()
    status, first, _ = await app_client.call("POST", "/api/v1/events", {"eventType": kind, "payload": {}}, headers)
    assert status == 201
    status, again, _ = await app_client.call("POST", "/api/v1/events", {"eventType": kind, "payload": {}}, headers)
    assert status == 409 and again["code"] == "CONFLICT" and again["eventId"] == first["id"]
