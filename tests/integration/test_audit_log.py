"""The audit log through the real app and a real database: one row per mutation, written in the
mutation's transaction, secrets never in it, listed newest first with filters and a keyset cursor,
admins only, and append-only in the database itself."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from blacksheep import Content

from control.services.keys import create_key
from control.services.sessions import create_session
from control.services.users import add_member, create_user
from control.store.queries import q
from tests.integration.conftest import Caller
from tests.support.certs import make_pki

EP = {"url": "https://api.example.com/webhooks", "eventTypes": ["order.created"]}
AUDIT = "/api/v1/audit-logs"
NEW = "the id the response gives"


async def audit_rows(pool: Any, client_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM audit_logs WHERE client_id = $1 ORDER BY created_at, id",
                            uuid.UUID(client_id))
    return [dict(r) for r in rows]


async def dead_event(app_client: Caller, pool: Any) -> str:
    """A direct event whose delivery ended dead, as the engine's writer would leave it."""
    status, ev, _ = await app_client.call(
        "POST", "/api/v1/events", {"destination": "https://billing.example.com/hook", "payload": {"n": 1}},
        {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, ev
    await pool.execute("UPDATE tasks SET status = 'dead', attempts = 5 WHERE event_id = $1", uuid.UUID(ev["id"]))
    await pool.execute(q("rollup_events"), [uuid.UUID(ev["id"])])
    return str(ev["id"])


async def test_every_mutation_leaves_one_row_naming_actor_resource_and_address_and_no_secret(
        app_client: Caller, pool: Any, tmp_path: Path) -> None:
    key_id, prefix = await pool.fetchrow("SELECT id, key_prefix FROM api_keys WHERE client_id = $1",
                                         uuid.UUID(app_client.client_id))
    pki = make_pki(tmp_path)
    secrets: list[str] = [app_client.key, pki.client_key]
    seen = 0

    async def mutate(method: str, path: str, body: Any, action: str, resource: str,
                     resource_id: str | None, expect: int = 200) -> Any:
        nonlocal seen
        status, out, _ = await app_client.call(method, path, body, {"X-Idempotency-Key": str(uuid.uuid4())})
        assert status == expect, (path, out)
        rows = await audit_rows(pool, app_client.client_id)
        assert len(rows) == seen + 1, (path, rows[seen:])
        row = rows[seen]
        seen += 1
        expected_id = out["id"] if resource_id == NEW else resource_id
        assert (row["action"], row["resource"], row["resource_id"]) == (action, resource, expected_id), path
        assert (row["actor_type"], row["actor_id"], row["actor_label"]) == ("api_key", key_id, prefix)
        assert row["ip"], "the caller's address is recorded"
        return out

    made = await mutate("POST", "/api/v1/endpoints", EP, "create", "endpoint", NEW, 201)
    ep = made["id"]
    secrets.append(made["signingSecret"])
    rows = await audit_rows(pool, app_client.client_id)
    assert rows[0]["before"] is None and rows[0]["after"]["url"] == EP["url"]

    async def on_endpoint(method: str, path: str, body: Any, action: str, expect: int = 200) -> Any:
        return await mutate(method, f"/api/v1/endpoints/{ep}{path}", body, action, "endpoint", ep, expect)

    rotated = await on_endpoint("PATCH", "", {"signingSecret": None, "description": "v2"}, "update")
    secrets.append(rotated["signingSecret"])
    await on_endpoint("PATCH", "", {"signingSecret": "my-own-secret-1234"}, "update")
    secrets.append("my-own-secret-1234")
    await on_endpoint("POST", "/pause", None, "pause")
    await on_endpoint("POST", "/resume", None, "resume")
    await on_endpoint("POST", "/versions/1/rollback", None, "rollback")
    await on_endpoint("POST", "/mtls", {"certPem": pki.client_cert, "keyPem": pki.client_key}, "set_mtls")
    await on_endpoint("DELETE", "/mtls", None, "remove_mtls", 204)
    await on_endpoint("POST", "/standard-webhooks/ed25519", None, "rotate_ed25519")
    sealed = await pool.fetchrow("SELECT signing_secret, sw_ed25519_private FROM endpoints WHERE id = $1",
                                 uuid.UUID(ep))
    secrets += [sealed["signing_secret"], sealed["sw_ed25519_private"]]

    created = await mutate("POST", "/api/v1/event-types", {"name": "order.created"}, "create", "event_type",
                           NEW, 201)
    et = created["id"]
    await mutate("PUT", f"/api/v1/event-types/{et}", {"description": "orders"}, "update", "event_type", et)
    await mutate("DELETE", f"/api/v1/event-types/{et}", None, "delete", "event_type", et, 204)

    one, two, three = [await dead_event(app_client, pool) for _ in range(3)]
    await mutate("PATCH", f"/api/v1/events/{one}", {"payload": {"n": 2}}, "update", "event", one)
    await mutate("POST", f"/api/v1/events/{two}/replay", None, "replay", "event", two)
    retried = await mutate("POST", "/api/v1/events/batch/retry", {"eventIds": [one, three]}, "retry", "event", None)
    assert retried["retried"] == 2
    await on_endpoint("DELETE", "", None, "delete", 204)

    rows = await audit_rows(pool, app_client.client_id)
    by_action = {(r["resource"], r["action"]): r for r in rows}
    update = rows[1]
    assert update["before"]["description"] == "" and update["after"]["description"] == "v2"
    assert by_action[("endpoint", "set_mtls")]["after"]["hasMtls"] is True
    assert by_action[("endpoint", "pause")]["after"]["status"] == "paused"
    assert by_action[("endpoint", "delete")]["after"] is None
    edit = by_action[("event", "update")]
    assert edit["before"]["payload"] == {"n": 1} and edit["after"]["payload"] == {"n": 2}
    batch = by_action[("event", "retry")]
    assert batch["after"] == {"retried": 2, "eventIds": [one, three]}, "one row naming the count and the ids"
    text = orjson.dumps([{k: r[k] for k in ("before", "after")} for r in rows]).decode()
    for secret in secrets:
        assert secret not in text
    assert "PRIVATE KEY" not in text and "whsec_" not in text

    # Read back through the API, as documented.
    status, page, _ = await app_client.call("GET", f"{AUDIT}?limit=100")
    assert status == 200, page
    assert len(page["data"]) == len(rows) and page["pagination"] == {"hasMore": False, "cursor": None}
    newest = page["data"][0]
    assert newest["action"] == "delete" and newest["resource"] == "endpoint" and newest["resourceId"] == ep
    assert newest["actor"] == {"type": "api_key", "id": str(key_id), "label": prefix}
    assert set(newest) == {"id", "actor", "action", "resource", "resourceId", "ip", "before", "after",
                           "projectId", "createdAt"}


async def test_rows_commit_and_roll_back_with_their_change(app_client: Caller, pool: Any) -> None:
    status, _, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "a.b"})
    assert status == 201
    before = len(await audit_rows(pool, app_client.client_id))
    status, body, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "a.b"})
    assert status == 409, body
    status, body, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{uuid.uuid4()}", {"description": "x"})
    assert status == 404, body
    assert len(await audit_rows(pool, app_client.client_id)) == before, "a refused change leaves no row"

    # The other way round: when the audit row cannot be written, the change does not happen either.
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", EP)
    assert status == 201
    await pool.execute("""
        CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit store unavailable'; END $$;
        CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_logs
            FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();""")
    status, _, _ = await app_client.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"description": "changed"})
    assert status == 500
    status, _, _ = await app_client.call("POST", f"/api/v1/endpoints/{ep['id']}/pause")
    assert status == 500
    status, _, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "never.made"})
    assert status == 500
    row = await pool.fetchrow("SELECT description, status, version FROM endpoints WHERE id = $1", uuid.UUID(ep["id"]))
    assert dict(row) == {"description": "", "status": "active", "version": 1}
    assert await pool.fetchval("SELECT count(*) FROM event_types WHERE name = 'never.made'") == 0


async def test_list_filters_pages_and_stays_in_its_workspace_and_project(
        app_client: Caller, pool: Any, second_key: str) -> None:
    client_id = uuid.UUID(app_client.client_id)
    ids = []
    for i in range(5):
        status, et, _ = await app_client.call("POST", "/api/v1/event-types", {"name": f"t{i}"})
        assert status == 201
        ids.append(et["id"])
    for i in (0, 1):
        status, _, _ = await app_client.call("PUT", f"/api/v1/event-types/{ids[i]}", {"description": "d"})
        assert status == 200
    status, _, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "theirs"}, key=second_key)
    assert status == 201

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        path = f"{AUDIT}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await app_client.call("GET", path)
        assert status == 200, page
        assert len(page["data"]) <= 2
        seen += page["data"]
        cursor = page["pagination"]["cursor"]
        if not page["pagination"]["hasMore"]:
            assert cursor is None
            break
    assert len(seen) == 7 and len({e["id"] for e in seen}) == 7
    assert [e["action"] for e in seen[:2]] == ["update", "update"], "newest first"
    assert [e["resourceId"] for e in seen[2:]] == ids[::-1]
    assert "theirs" not in orjson.dumps(seen).decode(), "another workspace's rows never show"

    status, page, _ = await app_client.call("GET", f"{AUDIT}?resource=event_type&action=update")
    assert [e["resourceId"] for e in page["data"]] == [ids[1], ids[0]]
    status, page, _ = await app_client.call("GET", f"{AUDIT}?resource=endpoint")
    assert status == 200 and page["data"] == []
    status, body, _ = await app_client.call("GET", f"{AUDIT}?cursor=garbage")
    assert status == 400, body
    status, body, _ = await app_client.call("GET", f"{AUDIT}?action={'x' * 65}")
    assert status == 400, body

    project = uuid.uuid4()
    await pool.execute("INSERT INTO projects (id, client_id, name) VALUES ($1, $2, 'p')", project, client_id)
    in_project = {"X-Project-ID": str(project)}
    status, et, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "scoped"}, in_project)
    assert status == 201, et
    status, page, _ = await app_client.call("GET", AUDIT, headers=in_project)
    assert [(e["resourceId"], e["projectId"]) for e in page["data"]] == [(et["id"], str(project))]


async def test_the_log_is_append_only(app_client: Caller, pool: Any) -> None:
    status, _, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "x"})
    assert status == 201
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("UPDATE audit_logs SET action = 'nothing'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("DELETE FROM audit_logs")
    async with pool.acquire() as conn, conn.transaction():   # erasing another workspace allows nothing here
        await conn.execute("SELECT set_config('mittr.erasing_client', $1, true)", str(uuid.uuid4()))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_logs")
    assert await pool.fetchval("SELECT count(*) FROM audit_logs WHERE action = 'create'") == 1


async def test_only_admins_read_it(app_client: Caller, pool: Any) -> None:
    client_id = uuid.UUID(app_client.client_id)
    sessions = {}
    async with pool.acquire() as conn:
        for role in ("admin", "editor", "viewer"):
            user = await create_user(conn, f"{role}@example.com", verified=True)
            await add_member(conn, client_id, user["id"], role)
            sessions[role] = (await create_session(conn, client_id, user_id=user["id"])).token
    scoped = await create_key(pool, client_id, "reader", scopes=["events:*", "endpoints:*"])
    for role in ("editor", "viewer"):
        resp = await app_client.client.get(AUDIT, headers={"Cookie": f"mittr_session={sessions[role]}"})
        assert resp.status == 403, role
    status, body, _ = await app_client.call("GET", AUDIT, key=scoped.key)
    assert status == 403, body

    # A person's own changes name them.
    headers = {"Cookie": f"mittr_session={sessions['admin']}", "Origin": "http://127.0.0.1:8000"}
    resp = await app_client.client.post("/api/v1/event-types", headers=headers,
                                        content=Content(b"application/json", b'{"name": "by.hand"}'))
    assert resp.status == 201
    resp = await app_client.client.get(AUDIT, headers={"Cookie": f"mittr_session={sessions['admin']}"})
    assert resp.status == 200
    entry = orjson.loads(await resp.read())["data"][0]
    assert entry["actor"]["type"] == "user" and entry["actor"]["label"] == "admin@example.com"
