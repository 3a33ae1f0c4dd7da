"""GDPR export and erasure through the real app and a real database: the export is complete, has no
secrets, and streams in bounded memory; the erasure takes every row of one workspace (in bounded
batches), its people who belong nowhere else, and nothing of any other workspace."""

from __future__ import annotations

import asyncio
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from blacksheep import Content

from control.policy.tokens import digest
from control.services.gdpr import GdprService
from control.services.gdpr_erasure import EraseLimits, erase_rows
from control.services.keys import create_client, create_key
from control.services.principal import Principal
from control.services.sessions import create_session
from control.services.users import add_member, create_user
from control.store.queries import q
from tests.integration.conftest import Caller
from tests.support.certs import make_pki

EXPORT = "/api/v1/gdpr/export"
ERASE = "/api/v1/gdpr/data"
PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$not-a-real-hash-but-secret-all-the-same"
# Tables the workspace's rows live in beyond the discovered ones (partitioned, or without client_id).
EXTRA_TABLES = ("delivery_attempts",)


class Workspace:
    """A workspace with a bit of everything, made through the API where the API makes it."""

    def __init__(self, caller: Caller, key: str, client_id: uuid.UUID, tag: str) -> None:
        self.caller, self.key, self.client_id, self.tag = caller, key, client_id, tag
        self.secrets: list[str] = [key]
        self.session = ""

    async def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        status, out, _ = await self.caller.call(method, path, body, headers, key=self.key)
        assert status < 300, (path, status, out)
        return out

    async def fill(self, pool: Any, pki: Any, shared_user: uuid.UUID | None = None) -> None:
        async with pool.acquire() as conn:
            sole = await create_user(conn, f"sole-{self.tag}@example.com", name=f"Sole {self.tag}",
                                     password_hash=PASSWORD_HASH, verified=True)
            await add_member(conn, self.client_id, sole["id"], "admin")
            if shared_user is not None:
                await add_member(conn, self.client_id, shared_user, "viewer")
            self.session = (await create_session(conn, self.client_id, user_id=sole["id"], ip="198.51.100.7",
                                                 user_agent="pytest")).token
            await conn.execute(
                "INSERT INTO auth_tokens (token_hash, kind, client_id, email, role, expires_at)"
                " VALUES ($1, 'invite', $2, $3, 'editor', now() + interval '1 day')",
                digest(f"invite-{self.tag}"), self.client_id, f"invitee-{self.tag}@example.com")
            await conn.execute("INSERT INTO login_throttle (key, window_start, failures) VALUES ($1, now(), 2)",
                               f"email:sole-{self.tag}@example.com")
        self.secrets += [PASSWORD_HASH, self.session, f"invite-{self.tag}", pki.client_key]
        ep = await self.call("POST", "/api/v1/endpoints", {"url": f"https://{self.tag}.example.com/hook",
                                                          "eventTypes": ["order.*"]})
        self.secrets.append(ep["signingSecret"])
        await self.call("POST", f"/api/v1/endpoints/{ep['id']}/mtls", {"certPem": pki.client_cert,
                                                                       "keyPem": pki.client_key})
        await self.call("POST", f"/api/v1/endpoints/{ep['id']}/standard-webhooks/ed25519")
        await self.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"description": f"{self.tag} orders"})
        await self.call("POST", "/api/v1/event-types", {"name": "order.created",
                                                        "schema": {"type": "object"}})
        for i in range(3):
            await self.call("POST", "/api/v1/events", {"eventType": "order.created",
                                                       "payload": {"order": f"{self.tag}-{i}"}},
                            {"X-Idempotency-Key": f"{self.tag}-{i}"})
        await self.call("POST", "/api/v1/events", {"destination": "https://direct.example.com/x",
                                                   "payload": {"direct": self.tag}},
                        {"X-Idempotency-Key": f"{self.tag}-direct"})
        sealed = await pool.fetchrow("SELECT signing_secret, mtls_key, sw_ed25519_private FROM endpoints"
                                     " WHERE id = $1", uuid.UUID(ep["id"]))
        self.secrets += [v for v in sealed.values() if v]
        # What the engine would have recorded: attempts, roll-ups, limiter numbers.
        await pool.execute(
            "INSERT INTO delivery_attempts (id, task_id, event_id, client_id, endpoint_id, attempt_number,"
            " status_code, response_body, outcome, duration_ms, processing_overhead_us, attempted_at)"
            " SELECT gen_random_uuid(), t.id, t.event_id, t.client_id, t.endpoint_id, 1, 200, $2, 'success', 12, 3,"
            " now() FROM tasks t WHERE t.client_id = $1", self.client_id, f"ok from {self.tag}")
        await pool.execute(
            "INSERT INTO delivery_rollups (client_id, minute, endpoint_id, project_id, attempts, latency_hist)"
            " VALUES ($1, date_trunc('minute', now()), $2, '00000000-0000-0000-0000-000000000000', 4, '{1}')",
            self.client_id, uuid.UUID(ep["id"]))
        await pool.execute(
            "INSERT INTO endpoint_limiter_stats (endpoint_id, limit_per_sec, throttled_total, breaker_state,"
            " updated_at) VALUES ($1, 0, 0, 'closed', now())", uuid.UUID(ep["id"]))


async def tables_with_rows(pool: Any, client_id: uuid.UUID) -> dict[str, int]:
    """Rows of the workspace in every table that has a client_id column."""
    names = [r["name"] for r in await pool.fetch(q("gdpr_client_tables"))] + list(EXTRA_TABLES)
    out = {}
    for name in names:
        if name != "gdpr_erasures":
            out[name] = await pool.fetchval(f'SELECT count(*) FROM "{name}" WHERE client_id = $1', client_id)
    out["endpoint_limiter_stats"] = await pool.fetchval(
        "SELECT count(*) FROM endpoint_limiter_stats s JOIN endpoints e ON e.id = s.endpoint_id"
        " WHERE e.client_id = $1", client_id)
    return out


@pytest.fixture
async def two(app_client: Caller, pool: Any, tmp_path: Path) -> tuple[Workspace, Workspace, uuid.UUID]:
    """Workspace A (the fixture's) and B, each filled, with one person who belongs to both."""
    pki = make_pki(tmp_path)
    b_row = await create_client(pool, "tenant-b")
    b_key = await create_key(pool, b_row["id"], "admin")
    async with pool.acquire() as conn:
        shared = await create_user(conn, "both@example.com", password_hash=PASSWORD_HASH)
        await add_member(conn, b_row["id"], shared["id"], "editor")
    a = Workspace(app_client, app_client.key, uuid.UUID(app_client.client_id), "alpha")
    b = Workspace(app_client, b_key.key, b_row["id"], "beta")
    await a.fill(pool, pki, shared["id"])
    await b.fill(pool, pki)
    return a, b, shared["id"]


async def test_export_streams_everything_of_the_workspace_and_no_secret(
        app_client: Caller, pool: Any, two: tuple[Workspace, Workspace, uuid.UUID]) -> None:
    a, b, _ = two
    inbound_secret, hook = "inbound-secret-only-for-gdpr-test", "https://hooks.slack.com/services/T0/B0/gdprsecrethook"
    status, _, _ = await app_client.call("POST", "/api/v1/inbound-endpoints",
                                         {"name": "gh", "pathSuffix": "gdpr-gh", "source": "github",
                                          "sourceConfig": {"secret": inbound_secret}}, key=a.key)
    assert status == 201
    status, made, _ = await app_client.call("POST", "/api/v1/connectors",
                                            {"name": "ops", "type": "slack", "config": {"webhookUrl": hook}},
                                            key=a.key)
    assert status == 201, made
    resp = await app_client.client.get(EXPORT, headers={"X-API-Key": a.key})
    raw = await resp.read()
    assert resp.status == 200, raw[:500]
    assert resp.content_type() == b"application/json"
    assert resp.get_first_header(b"transfer-encoding") == b"chunked", "streamed, not buffered"
    assert b"attachment" in (resp.get_first_header(b"content-disposition") or b"")
    doc = orjson.loads(raw)
    assert doc["workspace"]["id"] == str(a.client_id) and doc["workspace"]["name"] == "tenant-a"
    assert {m["email"] for m in doc["members"]} == {"sole-alpha@example.com", "both@example.com"}
    assert all(set(m) == {"id", "email", "name", "role", "emailVerified", "joinedAt", "createdAt"}
               for m in doc["members"])
    assert [i["email"] for i in doc["invitations"]] == ["invitee-alpha@example.com"]
    assert doc["sessions"][0]["ip"] == "198.51.100.7"
    assert [k["keyPrefix"] for k in doc["apiKeys"]] == [a.key[:8]]
    assert "keyHash" not in doc["apiKeys"][0] and "key" not in doc["apiKeys"][0]
    [ep] = doc["endpoints"]
    assert ep["hasMtls"] is True and ep["description"] == "alpha orders" and "signingSecret" not in ep
    assert [v["version"] for v in doc["endpointVersions"]] == [1, 2, 3, 4]
    assert [t["name"] for t in doc["eventTypes"]] == ["order.created"]
    assert [e["payload"] for e in doc["events"]] == [{"order": "alpha-0"}, {"order": "alpha-1"},
                                                      {"order": "alpha-2"}, {"direct": "alpha"}]
    assert all(len(e["deliveries"]) == 1 for e in doc["events"])
    assert len(doc["attempts"]) == 4 and doc["attempts"][0]["responseBody"] == "ok from alpha"
    assert {(r["resource"], r["action"]) for r in doc["auditLogs"]} >= {
        ("endpoint", "create"), ("endpoint", "set_mtls"), ("event_type", "create"), ("workspace", "export")}
    assert [i["pathSuffix"] for i in doc["inboundEndpoints"]] == ["gdpr-gh"]
    assert [c["name"] for c in doc["connectors"]] == ["ops"] and "alertRules" in doc and "alertHistory" in doc
    text = raw.decode()
    assert inbound_secret not in text and hook not in text
    for secret in a.secrets:
        assert secret not in text
    assert "PRIVATE KEY" not in text and "whsec_" not in text and "argon2" not in text
    for other in ("beta", str(b.client_id), b.key[:8]):
        assert other not in text, "nothing of another workspace"


async def test_export_of_a_large_workspace_runs_in_bounded_memory(pool: Any, tmp_path: Path) -> None:
    client = await create_client(pool, "big")
    cid = client["id"]
    n = 20_000
    await pool.execute(
        "INSERT INTO events (id, client_id, idempotency_key, destination, payload, max_attempts, priority,"
        " status, task_count, created_at)"
        " SELECT gen_random_uuid(), $1, 'k' || i, 'https://x.example.com/h',"
        "        convert_to('{\"i\":' || i || ',\"pad\":\"' || repeat('x', 1000) || '\"}', 'UTF8'), 5, 5,"
        "        'delivered', 1, now() - (($2 - i) * interval '1 ms')"
        " FROM generate_series(1, $2) AS i", cid, n)
    await pool.execute(
        "INSERT INTO tasks (id, event_id, client_id, partition, status, max_attempts, priority, next_attempt_at)"
        " SELECT gen_random_uuid(), id, client_id, 0, 'delivered', 5, 5, now() FROM events WHERE client_id = $1",
        cid)
    await pool.execute(
        "INSERT INTO delivery_attempts (id, task_id, event_id, client_id, attempt_number, status_code,"
        " response_body, outcome, duration_ms, processing_overhead_us, attempted_at)"
        " SELECT gen_random_uuid(), t.id, t.event_id, t.client_id, 1, 200, repeat('r', 200), 'success', 5, 1,"
        " now() FROM tasks t WHERE t.client_id = $1", cid)
    service = GdprService(pool, 4096)
    chunks = await service.export(Principal(cid, None, frozenset(), None))
    out = tmp_path / "export.json"
    written = pieces = 0
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        with out.open("wb") as f:
            async for chunk in chunks():
                f.write(chunk)
                written += len(chunk)
                pieces += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    doc = orjson.loads(out.read_bytes())
    assert len(doc["events"]) == n and len(doc["attempts"]) == n
    assert [e["payload"]["i"] for e in doc["events"][:3]] == [1, 2, 3], "oldest first"
    assert written > 25_000_000 and pieces > 100
    assert peak - base < min(written / 4, 10_000_000), f"peak {peak - base} bytes while writing {written}"
    print(f"export: {written} bytes in {pieces} chunks, peak traced memory {peak - base} bytes")


async def test_erase_needs_the_workspace_id_and_an_admin(
        app_client: Caller, pool: Any, two: tuple[Workspace, Workspace, uuid.UUID]) -> None:
    a, b, _ = two
    for body in (None, {}, {"confirm": ""}, {"confirm": str(b.client_id)}, {"confirm": "tenant-a"},
                 {"confirm": str(a.client_id), "also": 1}, ["x"]):
        content = None if body is None else Content(b"application/json", orjson.dumps(body))
        resp = await app_client.client.delete(ERASE, headers={"X-API-Key": a.key}, content=content)
        assert resp.status == 400, (body, await resp.read())
    async with pool.acquire() as conn:
        for role in ("editor", "viewer"):
            user = await create_user(conn, f"{role}@example.com")
            await add_member(conn, a.client_id, user["id"], role)
            session = (await create_session(conn, a.client_id, user_id=user["id"])).token
            headers = {"Cookie": f"mittr_session={session}", "Origin": "http://127.0.0.1:8000"}
            resp = await app_client.client.delete(f"{ERASE}?confirm={a.client_id}", headers=headers)
            assert resp.status == 403, role
            resp = await app_client.client.get(EXPORT, headers=headers)
            assert resp.status == 403, role
    project = uuid.uuid4()
    await pool.execute("INSERT INTO projects (id, client_id, name) VALUES ($1, $2, 'p')", project, a.client_id)
    resp = await app_client.client.delete(f"{ERASE}?confirm={a.client_id}",
                                          headers={"X-API-Key": a.key, "X-Project-ID": str(project)})
    assert resp.status == 403, "a project's view does not erase the workspace"
    assert (await tables_with_rows(pool, a.client_id))["events"] == 4, "nothing was erased"


async def test_erase_takes_everything_of_one_workspace_and_nothing_else(
        app_client: Caller, pool: Any, two: tuple[Workspace, Workspace, uuid.UUID]) -> None:
    a, b, shared = two
    before_b = await tables_with_rows(pool, b.client_id)
    before_a = await tables_with_rows(pool, a.client_id)
    assert all(before_a[t] > 0 for t in ("events", "tasks", "delivery_attempts", "delivery_rollups", "endpoints",
                                          "endpoint_versions", "event_types", "api_keys", "sessions",
                                          "auth_tokens", "memberships", "client_usage", "audit_logs",
                                          "endpoint_limiter_stats")), before_a

    resp = await app_client.client.delete(ERASE, headers={"X-API-Key": a.key},
                                          content=Content(b"application/json",
                                                          orjson.dumps({"confirm": str(a.client_id)})))
    body = orjson.loads(await resp.read())
    assert resp.status == 200, body
    assert body["workspaceId"] == str(a.client_id)
    assert body["erased"]["events"] == 4 and body["erased"]["users"] == 1 and body["erased"]["audit_logs"] > 0

    assert set((await tables_with_rows(pool, a.client_id)).values()) == {0}
    assert await tables_with_rows(pool, b.client_id) == before_b, "the other workspace is untouched"
    emails = {r["email"] for r in await pool.fetch("SELECT email FROM users")}
    assert "sole-alpha@example.com" not in emails, "a person who belonged only here is gone"
    assert {"both@example.com", "sole-beta@example.com"} <= emails
    assert await pool.fetchval("SELECT role FROM memberships WHERE user_id = $1", shared) == "editor"
    throttled = {r["key"] for r in await pool.fetch("SELECT key FROM login_throttle")}
    assert throttled == {"email:sole-beta@example.com"}
    client = await pool.fetchrow("SELECT name, deleted_at FROM clients WHERE id = $1", a.client_id)
    assert client["deleted_at"] is not None and client["name"] == ""
    erasure = await pool.fetchrow("SELECT * FROM gdpr_erasures WHERE client_id = $1", a.client_id)
    assert erasure["finished_at"] is not None and erasure["actor_type"] == "api_key"

    for _ in range(50):   # keys and sessions are cached for a second
        status, _, _ = await app_client.call("GET", "/api/v1/endpoints", key=a.key)
        if status == 401:
            break
        await asyncio.sleep(0.1)
    assert status == 401
    resp = await app_client.client.get("/api/v1/endpoints", headers={"Cookie": f"mittr_session={a.session}"})
    assert resp.status == 401
    status, listing, _ = await app_client.call("GET", "/api/v1/endpoints", key=b.key)
    assert status == 200 and len(listing["data"]) == 1
    resp = await app_client.client.get("/api/v1/endpoints", headers={"Cookie": f"mittr_session={b.session}"})
    assert resp.status == 200


async def test_erasure_goes_in_bounded_batches(pool: Any) -> None:
    client = await create_client(pool, "batched")
    other = await create_client(pool, "kept")
    cid = client["id"]
    for owner in (cid, other["id"]):
        await pool.execute(
            "INSERT INTO events (id, client_id, idempotency_key, payload, max_attempts, priority, status, task_count)"
            " SELECT gen_random_uuid(), $1, 'k' || i, '{}'::bytea, 5, 5, 'dead', 3 FROM generate_series(1, 500) i",
            owner)
        await pool.execute(
            "INSERT INTO tasks (id, event_id, client_id, partition, status, max_attempts, priority, next_attempt_at)"
            " SELECT gen_random_uuid(), e.id, e.client_id, 0, 'dead', 5, 5, now()"
            " FROM events e, generate_series(1, 3) WHERE e.client_id = $1", owner)
        await pool.execute(
            "INSERT INTO audit_logs (id, client_id, actor_type, action, resource)"
            " SELECT gen_random_uuid(), $1, 'system', 'create', 'thing' FROM generate_series(1, 120)", owner)
    limits = EraseLimits(rows=50, events=40, tasks=100)
    batches: list[tuple[str, int]] = []
    counts = await erase_rows(pool, cid, limits, lambda table, n: batches.append((table, n)))
    assert counts["events"] == 500 and counts["tasks"] == 1500 and counts["audit_logs"] == 120
    for table, n in batches:
        bound = {"events": limits.events, "tasks": limits.tasks}.get(table, limits.rows)
        assert 0 < n <= bound, (table, n)
    assert sum(1 for t, _ in batches if t == "events") >= 500 * 3 // limits.tasks
    assert sum(1 for t, _ in batches if t == "audit_logs") == 3
    assert await pool.fetchval("SELECT count(*) FROM events WHERE client_id = $1", cid) == 0
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE client_id = $1", cid) == 0
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE client_id = $1", other["id"]) == 1500
    assert await pool.fetchval("SELECT count(*) FROM audit_logs WHERE client_id = $1", other["id"]) == 120


async def test_an_interrupted_erasure_is_finished_and_late_rows_are_swept(pool: Any) -> None:
    client = await create_client(pool, "interrupted")
    cid = client["id"]
    key = await create_key(pool, cid, "k")
    await pool.execute(
        "INSERT INTO events (id, client_id, idempotency_key, payload, max_attempts, priority, status, task_count)"
        " SELECT gen_random_uuid(), $1, 'k' || i, '{}'::bytea, 5, 5, 'dead', 0 FROM generate_series(1, 30) i", cid)
    # What a crash right after the request began leaves: the workspace stopped, the erasure recorded.
    await pool.fetch(q("gdpr_begin_erasure"), cid, "api_key", key.id)
    service = GdprService(pool, 4096, late_sweep_s=0.5)
    try:
        service.resume()
        for _ in range(100):
            if await pool.fetchval("SELECT finished_at FROM gdpr_erasures WHERE client_id = $1", cid):
                break
            await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT count(*) FROM events WHERE client_id = $1", cid) == 0
        assert await pool.fetchval("SELECT count(*) FROM api_keys WHERE client_id = $1", cid) == 0
        # A delivery that was on the wire records its attempt after the erasure: the late sweep takes it.
        await pool.execute(
            "INSERT INTO delivery_attempts (id, task_id, event_id, client_id, attempt_number, outcome,"
            " duration_ms, processing_overhead_us, attempted_at)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), $1, 1, 'success', 1, 1, now())", cid)
        for _ in range(100):
            if await pool.fetchval("SELECT swept_at FROM gdpr_erasures WHERE client_id = $1", cid):
                break
            await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT count(*) FROM delivery_attempts WHERE client_id = $1", cid) == 0
        counts = await pool.fetchval("SELECT counts FROM gdpr_erasures WHERE client_id = $1", cid)
        assert counts["events"] == 30 and counts["lateSweep"] == {"delivery_attempts": 1}
    finally:
        await service.aclose()


async def test_export_holds_sub_accounts_and_their_portal_sessions_without_token_digests(
        app_client: Caller, pool: Any) -> None:
    """Sub-accounts (deactivated ones too) and every portal session's metadata, with the events
    attributed to them; never an exchange or session token, nor their digests; nothing of another
    workspace's sub-accounts."""
    status, sub, _ = await app_client.call("POST", "/api/v1/sub-accounts",
                                           {"name": "Customer One", "subID": "cust-1", "metadata": {"tier": "gold"}})
    assert status == 201, sub
    status, gone, _ = await app_client.call("POST", "/api/v1/sub-accounts", {"name": "Gone", "subID": "cust-2"})
    assert status == 201
    status, minted, _ = await app_client.call("POST", f"/api/v1/sub-accounts/{sub['id']}/sessions",
                                              {"returnURL": "https://app.example.com/back", "ttlSeconds": 600})
    assert status == 201, minted
    exchange = minted["url"].split("token=", 1)[1]
    status, exchanged, _ = await app_client.call("POST", "/sub-account-api/auth/exchange", {"token": exchange}, key="")
    assert status == 200, exchanged
    status, ev, _ = await app_client.call("POST", "/api/v1/events", {"eventType": "gdpr.sub", "payload": {}},
                                          {"X-Idempotency-Key": "gdpr-sub", "X-Sub-Account-ID": sub["id"]})
    assert status == 201, ev
    assert (await app_client.call("DELETE", f"/api/v1/sub-accounts/{gone['id']}"))[0] == 204
    other = await create_client(pool, "tenant-other")
    await pool.execute("INSERT INTO sub_accounts (id, client_id, name, sub_id) VALUES ($1, $2, 'Theirs', 'their-sub')",
                       uuid.uuid4(), other["id"])

    resp = await app_client.client.get(EXPORT, headers={"X-API-Key": app_client.key})
    raw = await resp.read()
    assert resp.status == 200, raw[:500]
    doc = orjson.loads(raw)
    subs = {s["subID"]: s for s in doc["subAccounts"]}
    assert set(subs) == {"cust-1", "cust-2"}
    assert subs["cust-1"] == {**sub, "updatedAt": subs["cust-1"]["updatedAt"]} and subs["cust-1"]["active"]
    assert subs["cust-2"]["active"] is False and subs["cust-2"]["deactivatedAt"]
    [session] = doc["portalSessions"]
    assert session["id"] == minted["session"]["id"] and session["subAccountId"] == sub["id"]
    assert session["status"] == "active" and session["returnURL"] == "https://app.example.com/back"
    assert session["ttlSeconds"] == 600 and session["exchangedAt"] and session["expiresAt"]
    assert [e["subAccountId"] for e in doc["events"]] == [sub["id"]]
    text = raw.decode()
    digests = await pool.fetchrow("SELECT exchange_hash, token_hash FROM portal_sessions WHERE id = $1",
                                  uuid.UUID(session["id"]))
    for secret in (exchange, exchanged["token"], digests["exchange_hash"].hex(), digests["token_hash"].hex()):
        assert secret not in text
    assert "their-sub" not in text and "Theirs" not in text
