"""Projects through the real API on a real database: CRUD, tenancy, the audit trail, and what
deleting one does to its endpoints, events, event types and API keys."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from control.services import projects as projects_service
from control.services.keys import create_key
from tests.integration.conftest import Caller

DEST = "https://consumer.example.com/hook"


async def new_project(c: Caller, name: str = "Staging", environment: str | None = "staging") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if environment is not None:
        body["environment"] = environment
    status, out, _ = await c.call("POST", "/api/v1/projects", body)
    assert status == 201, out
    return dict(out)


def under(project: dict[str, Any]) -> dict[str, str]:
    return {"X-Project-ID": project["id"]}


async def endpoint_in(c: Caller, project: dict[str, Any], mode: str = "poll") -> str:
    status, ep, _ = await c.call("POST", "/api/v1/endpoints", {"url": DEST, "eventTypes": ["order.*"],
                                                               "deliveryMode": mode}, under(project))
    assert status == 201, ep
    return str(ep["id"])


async def event_in(c: Caller, project: dict[str, Any], body: dict[str, Any] | None = None) -> str:
    status, ev, _ = await c.call("POST", "/api/v1/events", body or {"eventType": "order.created", "payload": {}},
                                 {**under(project), "X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, ev
    return str(ev["id"])


async def audit_rows(pool: asyncpg.Pool, client_id: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        "SELECT action, resource, resource_id, project_id, actor_type, before, after FROM audit_logs "
        "WHERE client_id = $1 AND resource = 'project' ORDER BY id", uuid.UUID(client_id)))


async def test_create_list_get_update_delete(app_client: Caller, pool: asyncpg.Pool) -> None:
    staging = await new_project(app_client, "Staging", "staging")
    assert staging["name"] == "Staging" and staging["environment"] == "staging"
    assert staging["createdAt"] and staging["updatedAt"] and uuid.UUID(staging["id"])
    prod = await new_project(app_client, "  Main  ", environment=None)
    assert prod["name"] == "Main" and prod["environment"] == "production", "trimmed; production by default"

    status, page, _ = await app_client.call("GET", "/api/v1/projects")
    assert status == 200 and [p["id"] for p in page["data"]] == [prod["id"], staging["id"]]
    status, page, _ = await app_client.call("GET", "/api/v1/projects?limit=1")
    assert [p["id"] for p in page["data"]] == [prod["id"]] and page["pagination"]["hasMore"]
    status, rest, _ = await app_client.call("GET", f"/api/v1/projects?limit=1&cursor={page['pagination']['cursor']}")
    assert [p["id"] for p in rest["data"]] == [staging["id"]] and not rest["pagination"]["hasMore"]

    status, got, _ = await app_client.call("GET", f"/api/v1/projects/{staging['id']}")
    assert status == 200 and got == staging
    status, renamed, _ = await app_client.call("PATCH", f"/api/v1/projects/{staging['id']}", {"name": "QA"})
    assert status == 200 and renamed["name"] == "QA" and renamed["environment"] == "staging"
    status, moved, _ = await app_client.call("PATCH", f"/api/v1/projects/{staging['id']}",
                                             {"name": "Production", "environment": "production"})
    assert status == 200 and (moved["name"], moved["environment"]) == ("Production", "production")

    status, _, _ = await app_client.call("DELETE", f"/api/v1/projects/{staging['id']}")
    assert status == 204
    status, err, _ = await app_client.call("GET", f"/api/v1/projects/{staging['id']}")
    assert status == 404 and err["code"] == "NOT_FOUND"
    status, err, _ = await app_client.call("GET", "/api/v1/events", headers=under(staging))
    assert status == 404 and err["code"] == "NOT_FOUND", "a deleted project's header answers 404"

    rows = await audit_rows(pool, app_client.client_id)
    assert [(r["action"], r["resource_id"]) for r in rows] == [
        ("create", staging["id"]), ("create", prod["id"]), ("update", staging["id"]), ("update", staging["id"]),
        ("delete", staging["id"])]
    assert all(r["actor_type"] == "api_key" and str(r["project_id"]) == r["resource_id"] for r in rows)
    assert rows[0]["before"] is None and rows[0]["after"] == staging
    assert (rows[3]["before"]["name"], rows[3]["after"]["name"]) == ("QA", "Production")
    assert rows[4]["before"]["name"] == "Production" and rows[4]["after"] is None


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": 7}, "name"),
    ({"name": "x" * 101}, "name"), ({"name": "a\nb"}, "name"), ({"name": "P", "environment": "prod"}, "environment"),
    ({"name": "P", "environment": 1}, "environment"), ({"name": "P", "owner": "me"}, "owner"),
])
async def test_create_refuses_invalid_bodies_naming_the_field(app_client: Caller, body: dict[str, Any],
                                                              field: str) -> None:
    status, err, _ = await app_client.call("POST", "/api/v1/projects", body)
    assert status == 400 and err["code"] == "BAD_REQUEST" and err["error"].startswith(f"{field}:"), err


async def test_update_refuses_invalid_fields_and_changes_nothing(app_client: Caller, pool: asyncpg.Pool) -> None:
    p = await new_project(app_client)
    for body, field in (({"environment": "qa"}, "environment"), ({"name": ""}, "name"), ([], "body")):
        status, err, _ = await app_client.call("PATCH", f"/api/v1/projects/{p['id']}", body)
        assert status == 400 and err["error"].startswith(f"{field}:"), err
    for same in ({}, {"name": p["name"], "environment": p["environment"]}):
        status, got, _ = await app_client.call("PATCH", f"/api/v1/projects/{p['id']}", same)
        assert status == 200 and got == p
    status, got, _ = await app_client.call("GET", f"/api/v1/projects/{p['id']}")
    assert got == p
    assert [r["action"] for r in await audit_rows(pool, app_client.client_id)] == ["create"], \
        "refused and empty changes leave no audit row"


async def test_another_workspaces_project_is_not_found(app_client: Caller, second_key: str) -> None:
    mine = await new_project(app_client)
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        status, err, _ = await app_client.call(method, f"/api/v1/projects/{mine['id']}", body, key=second_key)
        assert status == 404 and err["code"] == "NOT_FOUND", method
    status, page, _ = await app_client.call("GET", "/api/v1/projects", key=second_key)
    assert status == 200 and page["data"] == []
    status, err, _ = await app_client.call("GET", "/api/v1/endpoints", headers=under(mine), key=second_key)
    assert status == 404 and err["code"] == "NOT_FOUND"
    for bad in ("nope", str(uuid.uuid4())):
        status, _, _ = await app_client.call("DELETE", f"/api/v1/projects/{bad}")
        assert status == 404
    status, got, _ = await app_client.call("GET", f"/api/v1/projects/{mine['id']}")
    assert status == 200 and got == mine, "untouched by the other workspace"


async def test_a_caller_scoped_to_a_project_sees_and_changes_only_that_project(app_client: Caller) -> None:
    a, b = await new_project(app_client, "A"), await new_project(app_client, "B")
    status, page, _ = await app_client.call("GET", "/api/v1/projects", headers=under(a))
    assert status == 200 and [p["id"] for p in page["data"]] == [a["id"]]
    status, _, _ = await app_client.call("PATCH", f"/api/v1/projects/{b['id']}", {"name": "x"}, under(a))
    assert status == 404
    status, _, _ = await app_client.call("DELETE", f"/api/v1/projects/{b['id']}", headers=under(a))
    assert status == 404
    status, err, _ = await app_client.call("POST", "/api/v1/projects", {"name": "C"}, under(a))
    assert status == 403 and err["code"] == "FORBIDDEN"


async def test_a_plain_delete_refuses_while_the_project_has_endpoints_or_undelivered_events(
        app_client: Caller) -> None:
    with_endpoint, with_event = await new_project(app_client, "E"), await new_project(app_client, "V")
    await endpoint_in(app_client, with_endpoint)
    await event_in(app_client, with_event, {"destination": DEST, "payload": {"n": 1}})   # direct, queued
    for p, what in ((with_endpoint, "endpoints"), (with_event, "undelivered events")):
        for query in ("", "?force=false"):
            status, err, _ = await app_client.call("DELETE", f"/api/v1/projects/{p['id']}{query}")
            assert status == 409 and err["code"] == "INVALID_STATE" and what in err["error"], err
        status, _, _ = await app_client.call("GET", f"/api/v1/projects/{p['id']}")
        assert status == 200, "still there"
    status, err, _ = await app_client.call("DELETE", f"/api/v1/projects/{with_event['id']}?force=yes")
    assert status == 400 and err["error"].startswith("force:")


async def test_deleting_a_project_removes_its_event_types_and_revokes_its_keys(
        app_client: Caller, pool: asyncpg.Pool) -> None:
    p, other = await new_project(app_client, "P"), await new_project(app_client, "O")
    status, et, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "order.created"}, under(p))
    assert status == 201
    status, kept_type, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "order.created"},
                                                 under(other))
    assert status == 201
    bound = await create_key(pool, uuid.UUID(app_client.client_id), "bound", project_id=uuid.UUID(p["id"]))
    kept_key = await create_key(pool, uuid.UUID(app_client.client_id), "kept", project_id=uuid.UUID(other["id"]))

    status, _, _ = await app_client.call("DELETE", f"/api/v1/projects/{p['id']}")
    assert status == 204
    status, _, _ = await app_client.call("GET", f"/api/v1/event-types/{et['id']}")
    assert status == 404, "the project's event type is gone"
    status, _, _ = await app_client.call("GET", f"/api/v1/event-types/{kept_type['id']}")
    assert status == 200, "another project's is not"
    status, err, _ = await app_client.call("GET", "/api/v1/events", key=bound.key)
    assert status == 401 and err["code"] == "UNAUTHORIZED", "a key bound to a deleted project stops working"
    status, _, _ = await app_client.call("GET", "/api/v1/events", key=kept_key.key)
    assert status == 200
    row = await pool.fetchrow("SELECT is_active, deleted_at FROM api_keys WHERE id = $1", bound.id)
    assert row["is_active"] is False and row["deleted_at"] is not None, "soft-deleted: the row stays"


async def test_force_delete_ends_pending_deliveries_dead_and_keeps_delivered_history(
        app_client: Caller, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projects_service, "BATCH", 2)      # five endpoints: three batches
    p, other = await new_project(app_client, "P"), await new_project(app_client, "O")
    eps = [await endpoint_in(app_client, p) for _ in range(5)]
    other_ep = await endpoint_in(app_client, other)
    for n in range(3):
        status, _, _ = await app_client.call("POST", "/api/v1/event-types", {"name": f"t.{n}"}, under(p))
        assert status == 201
    # Delivered to the first endpoint only: its four other deliveries are still pending.
    acked = await event_in(app_client, p)
    status, body, _ = await app_client.call("POST", "/api/v1/poll/ack", {"endpoint_id": eps[0],
                                                                         "event_ids": [acked]}, under(p))
    assert status == 200 and body["acknowledged"] == 1
    pending = await event_in(app_client, p)
    other_event = await event_in(app_client, other)
    status, inbound, _ = await app_client.call("POST", "/api/v1/inbound-endpoints",
                                               {"name": "hub", "pathSuffix": "proj-hub", "source": "docker-hub",
                                                "sourceConfig": {}}, under(p))
    assert status == 201, inbound

    status, _, _ = await app_client.call("DELETE", f"/api/v1/projects/{p['id']}?force=true")
    assert status == 204
    status, _, _ = await app_client.call("GET", f"/api/v1/inbound-endpoints/{inbound['id']}")
    assert status == 404, "its public inbound paths are gone too"
    for ep in eps:
        status, _, _ = await app_client.call("GET", f"/api/v1/endpoints/{ep}")
        assert status == 404
    status, page, _ = await app_client.call("GET", "/api/v1/event-types")
    assert page["data"] == [], "the project's event types are gone"
    for event_id, expected in ((pending, "dead"), (acked, "dead"), (other_event, "queued")):
        status, ev, _ = await app_client.call("GET", f"/api/v1/events/{event_id}")
        assert status == 200 and ev["status"] == expected, (event_id, ev["status"])
        if event_id != other_event:
            assert ev["pending"] == []
    status, ev, _ = await app_client.call("GET", f"/api/v1/events/{acked}")
    assert [a["outcome"] for a in ev["deliveryAttempts"]] == ["success"], "delivered history stays"
    status, page, _ = await app_client.call("GET", "/api/v1/deliveries")
    assert [d["eventId"] for d in page["data"]] == [acked]
    status, _, _ = await app_client.call("GET", f"/api/v1/endpoints/{other_ep}")
    assert status == 200, "other projects are untouched"
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE endpoint_id = ANY($1::uuid[]) AND status IN "
                               "('queued', 'delivering', 'failed')", [uuid.UUID(e) for e in eps]) == 0


async def test_concurrent_deletes_of_one_project_leave_nothing_behind(app_client: Caller) -> None:
    p = await new_project(app_client)
    for _ in range(3):
        await endpoint_in(app_client, p)
    results = await asyncio.gather(*(app_client.call("DELETE", f"/api/v1/projects/{p['id']}?force=true")
                                     for _ in range(3)))
    assert sorted(r[0] for r in results) == [204, 404, 404], "one delete wins; the others find no project"
    page = (await app_client.call("GET", "/api/v1/endpoints"))[1]
    assert page["data"] == []
