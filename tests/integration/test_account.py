"""Account routes through the real app and a real database, as a person (session cookie) and as an
API key: /me, onboarding (persisted and audited), entitlements from the plan catalogue, egress IPs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from blacksheep import Content
from blacksheep.testing import TestClient

from control.services.keys import create_client, create_key
from control.services.sessions import COOKIE, create_session
from control.services.usage import count_accepted
from control.services.users import add_member, create_user
from control.settings import load_settings
from tests.integration.conftest import Caller

OWN_ORIGIN = "http://127.0.0.1:8000"      # the TestClient's Host


async def person(pool: Any, client_id: str, role: str, email: str | None = None) -> tuple[str, dict[str, Any]]:
    """A member of the workspace with this role, signed in: (session token, user row)."""
    async with pool.acquire() as conn:
        user = await create_user(conn, email or f"{uuid.uuid4().hex[:10]}@example.com", name="Ada Lovelace",
                                 verified=True)
        await add_member(conn, uuid.UUID(client_id), user["id"], role)
    return (await create_session(pool, uuid.UUID(client_id), user_id=user["id"])).token, dict(user)


async def as_person(caller: Caller, method: str, path: str, token: str, body: Any = None,
                    origin: str | None = OWN_ORIGIN) -> tuple[int, Any]:
    headers = {"Cookie": f"{COOKIE}={token}", **({"Origin": origin} if origin else {})}
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "POST":
        kwargs["content"] = Content(b"application/json", orjson.dumps(body))
    resp = await getattr(caller.client, method.lower())(path, **kwargs)
    text = await resp.read()
    return resp.status, (orjson.loads(text) if text else None)


@asynccontextmanager
async def app_with(db_url: str, pool: Any, env: dict[str, str]) -> AsyncIterator[Caller]:
    """The app under settings of our own (the shared fixture's plus `env`), with a fresh workspace."""
    from api.app import create_app

    app = create_app(load_settings(env={"DATABASE_URL": db_url, **env}))
    await app.start()
    client_row = await create_client(pool, "tenant-x")
    key = await create_key(pool, client_row["id"], "admin")
    try:
        yield Caller(TestClient(app), key.key, str(client_row["id"]))
    finally:
        await app.stop()


async def audit_rows(pool: Any, client_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM audit_logs WHERE client_id = $1 AND resource = 'workspace' ORDER BY id",
                            uuid.UUID(client_id))
    return [dict(r) for r in rows]     # the pool decodes jsonb


# --- GET /me ---------------------------------------------------------------------------------------


async def test_me_as_a_person_lists_account_workspace_role_and_other_workspaces(app_client: Caller,
                                                                               pool: Any) -> None:
    token, user = await person(pool, app_client.client_id, "admin", "ada@example.com")
    beta = await create_client(pool, "Beta")
    alpha = await create_client(pool, "Alpha")
    gone = await create_client(pool, "Gone")
    async with pool.acquire() as conn:
        await add_member(conn, beta["id"], user["id"], "viewer")
        await add_member(conn, alpha["id"], user["id"], "editor")
        await add_member(conn, gone["id"], user["id"], "admin")
        await conn.execute("UPDATE clients SET deleted_at = now() WHERE id = $1", gone["id"])
    status, body = await as_person(app_client, "GET", "/api/v1/me", token)
    assert status == 200, body
    created = await pool.fetchval("SELECT created_at FROM clients WHERE id = $1", uuid.UUID(app_client.client_id))
    assert body == {
        "user": {"id": str(user["id"]), "email": "ada@example.com", "name": "Ada Lovelace", "emailVerified": True},
        "workspace": {"id": app_client.client_id, "name": "tenant-a", "onboarded": False, "planId": "self-hosted",
                      "createdAt": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "role": "admin",
        "onboarding": {"completed": False, "completedAt": None},
        "memberships": [{"id": str(alpha["id"]), "name": "Alpha", "role": "editor"},
                        {"id": str(beta["id"]), "name": "Beta", "role": "viewer"}],
    }


async def test_me_as_an_api_key_describes_the_key(app_client: Caller, pool: Any) -> None:
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    key = await create_key(pool, uuid.UUID(app_client.client_id), "CI", scopes=["account:read", "events:write"],
                           expires_at=expires)
    status, body, _ = await app_client.call("GET", "/api/v1/me", key=key.key)
    assert status == 200, body
    assert body["apiKey"] == {"id": str(key.id), "name": "CI", "keyPrefix": key.key_prefix,
                              "scopes": ["account:read", "events:write"], "projectId": None,
                              "expiresAt": "2031-01-02T03:04:05Z"}
    assert body["workspace"]["id"] == app_client.client_id and body["workspace"]["planId"] == "self-hosted"
    assert body["onboarding"] == {"completed": False, "completedAt": None}
    assert "user" not in body and "memberships" not in body
    # The full-access key from the fixture: every scope, shown as the empty list it is stored as.
    status, body, _ = await app_client.call("GET", "/api/v1/me")
    assert status == 200 and body["apiKey"]["scopes"] == [] and body["apiKey"]["name"] == "admin"


async def test_a_key_without_the_account_scope_is_refused(app_client: Caller, pool: Any) -> None:
    key = await create_key(pool, uuid.UUID(app_client.client_id), "ingest", scopes=["events:write"])
    for path in ("/api/v1/me", "/api/v1/entitlements", "/api/v1/egress-ips"):
        status, body, _ = await app_client.call("GET", path, key=key.key)
        assert (status, body["code"]) == (403, "FORBIDDEN"), path


# --- every member reads; writes need the role -----------------------------------------------------


async def test_a_viewer_reads_me_entitlements_and_egress_ips_but_cannot_onboard(app_client: Caller,
                                                                                pool: Any) -> None:
    token, _ = await person(pool, app_client.client_id, "viewer")
    status, body = await as_person(app_client, "GET", "/api/v1/me", token)
    assert status == 200 and body["role"] == "viewer"
    status, body = await as_person(app_client, "GET", "/api/v1/entitlements", token)
    assert status == 200 and body["planId"] == "self-hosted"
    status, body = await as_person(app_client, "GET", "/api/v1/egress-ips", token)
    assert (status, body) == (200, {"ips": []})
    status, body = await as_person(app_client, "POST", "/api/v1/me/onboarding-complete", token,
                                   {"companyName": "Acme Corp"})
    assert (status, body["code"]) == (403, "FORBIDDEN")
    assert await pool.fetchval("SELECT onboarded_at FROM clients WHERE id = $1",
                               uuid.UUID(app_client.client_id)) is None


# --- POST /me/onboarding-complete ------------------------------------------------------------------


async def test_an_editor_completes_onboarding_persisted_and_audited(app_client: Caller, pool: Any) -> None:
    token, user = await person(pool, app_client.client_id, "editor", "eve@example.com")
    status, body = await as_person(app_client, "POST", "/api/v1/me/onboarding-complete", token,
                                   {"companyName": "  Acme Corp "})
    assert status == 200, body
    assert {k: body[k] for k in ("id", "name", "onboarded", "planId")} == {
        "id": app_client.client_id, "name": "Acme Corp", "onboarded": True, "planId": "self-hosted"}
    row = await pool.fetchrow("SELECT name, onboarded_at FROM clients WHERE id = $1", uuid.UUID(app_client.client_id))
    assert row["name"] == "Acme Corp" and row["onboarded_at"] is not None
    completed = row["onboarded_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, me = await as_person(app_client, "GET", "/api/v1/me", token)
    assert me["onboarding"] == {"completed": True, "completedAt": completed} and me["workspace"]["onboarded"]

    [entry] = await audit_rows(pool, app_client.client_id)
    assert {k: entry[k] for k in ("actor_type", "actor_id", "actor_label", "action", "resource_id")} == {
        "actor_type": "user", "actor_id": user["id"], "actor_label": "eve@example.com", "action": "onboard",
        "resource_id": app_client.client_id}
    assert entry["before"] == {"name": "tenant-a", "onboardedAt": None}
    assert entry["after"] == {"name": "Acme Corp", "onboardedAt": completed}

    # Again: renamed, the first completion time kept, audited again.
    status, body = await as_person(app_client, "POST", "/api/v1/me/onboarding-complete", token,
                                   {"companyName": "Acme Inc."})
    assert status == 200 and body["name"] == "Acme Inc."
    assert await pool.fetchval("SELECT onboarded_at FROM clients WHERE id = $1",
                               uuid.UUID(app_client.client_id)) == row["onboarded_at"]
    entries = await audit_rows(pool, app_client.client_id)
    assert len(entries) == 2 and entries[1]["before"] == {"name": "Acme Corp", "onboardedAt": completed}


async def test_a_cookie_write_from_another_origin_or_none_is_refused(app_client: Caller, pool: Any) -> None:
    token, _ = await person(pool, app_client.client_id, "admin")
    for origin in (None, "https://evil.example"):
        status, body = await as_person(app_client, "POST", "/api/v1/me/onboarding-complete", token,
                                       {"companyName": "Acme Corp"}, origin=origin)
        assert (status, body["code"]) == (403, "FORBIDDEN"), origin
    assert await audit_rows(pool, app_client.client_id) == []
    assert await pool.fetchval("SELECT name FROM clients WHERE id = $1", uuid.UUID(app_client.client_id)) == "tenant-a"


async def test_a_key_completes_onboarding_with_the_write_scope_only(app_client: Caller, pool: Any) -> None:
    client_id = uuid.UUID(app_client.client_id)
    reader = await create_key(pool, client_id, "reader", scopes=["account:read"])
    status, body, _ = await app_client.call("POST", "/api/v1/me/onboarding-complete", {"companyName": "Acme"},
                                            key=reader.key)
    assert (status, body["code"]) == (403, "FORBIDDEN")
    writer = await create_key(pool, client_id, "writer", scopes=["account:write"])
    status, body, _ = await app_client.call("POST", "/api/v1/me/onboarding-complete", {"companyName": "Acme"},
                                            key=writer.key)
    assert status == 200 and body["name"] == "Acme" and body["onboarded"] is True
    [entry] = await audit_rows(pool, app_client.client_id)
    assert (entry["actor_type"], entry["actor_id"], entry["actor_label"]) == ("api_key", writer.id, writer.key_prefix)


async def test_a_caller_scoped_to_a_project_cannot_change_the_workspace(app_client: Caller, pool: Any) -> None:
    project = uuid.uuid4()
    await pool.execute("INSERT INTO projects (id, client_id, name) VALUES ($1, $2, 'Staging')", project,
                       uuid.UUID(app_client.client_id))
    status, body, _ = await app_client.call("POST", "/api/v1/me/onboarding-complete", {"companyName": "Acme"},
                                            headers={"X-Project-ID": str(project)})
    assert (status, body["code"]) == (403, "FORBIDDEN")
    assert await audit_rows(pool, app_client.client_id) == []


@pytest.mark.parametrize(("body", "field"), [
    ({}, "companyName: required"),
    ({"companyName": None}, "companyName: required"),
    ({"companyName": ""}, "companyName: must not be blank"),
    ({"companyName": "   "}, "companyName: must not be blank"),
    ({"companyName": 42}, "companyName: expected a string"),
    ({"companyName": "x" * 201}, "companyName: longer than 200"),
    ({"companyName": "Acme\nCorp"}, "companyName: must not contain control characters"),
    ({"companyName": "Acme", "plan": "gold"}, "plan: unknown field"),
    (["Acme"], "body: expected a JSON object"),
])
async def test_onboarding_refuses_a_bad_company_name(app_client: Caller, pool: Any, body: Any, field: str) -> None:
    status, got, _ = await app_client.call("POST", "/api/v1/me/onboarding-complete", body)
    assert status == 400 and got["code"] == "BAD_REQUEST" and field in got["error"], got
    assert await pool.fetchval("SELECT onboarded_at FROM clients WHERE id = $1",
                               uuid.UUID(app_client.client_id)) is None


# --- GET /entitlements ------------------------------------------------------------------------------


async def test_entitlements_of_a_self_hosted_workspace_are_unlimited_with_usage(app_client: Caller,
                                                                                pool: Any) -> None:
    status, body, _ = await app_client.call("GET", "/api/v1/entitlements")
    assert status == 200, body
    assert {k: body[k] for k in ("planId", "planName", "monthlyEventQuota", "endpoints", "maxRateLimitPerSec",
                                 "retentionDays")} == {
        "planId": "self-hosted", "planName": "Self-hosted", "monthlyEventQuota": None, "endpoints": None,
        "maxRateLimitPerSec": None, "retentionDays": None}
    assert body["features"] and all(body["features"].values())
    assert body["usage"] == {"monthlyEvents": 0, "endpoints": 0}

    async with pool.acquire() as conn, conn.transaction():
        await count_accepted(conn, uuid.UUID(app_client.client_id), 7)
    ep = {"url": "https://api.example.com/webhooks", "eventTypes": ["order.created"]}
    status, created, _ = await app_client.call("POST", "/api/v1/endpoints", ep)
    assert status == 201, created
    status, gone, _ = await app_client.call("POST", "/api/v1/endpoints", ep)
    assert (await app_client.call("DELETE", f"/api/v1/endpoints/{gone['id']}"))[0] == 204
    status, body, _ = await app_client.call("GET", "/api/v1/entitlements")
    assert body["usage"] == {"monthlyEvents": 7, "endpoints": 1}


PLANS = """
[plans.free]
name = "Free"
monthly_price_cents = 0
annual_price_cents = 0
monthly_event_quota = 10000
endpoints = 3
max_rate_limit_per_sec = 10
retention_days = 3

[plans.growth]
name = "Growth"
monthly_price_cents = 4900
annual_price_cents = 49000
monthly_event_quota = 1000000
endpoints = 50
max_rate_limit_per_sec = 500
retention_days = 30
features = ["sso", "audit_logs"]
"""


async def test_entitlements_follow_the_workspace_plan_in_a_configured_catalogue(db_url: str, pool: Any,
                                                                               tmp_path: Path) -> None:
    plans = tmp_path / "plans.toml"
    plans.write_text(PLANS)
    env = {"MITTR_ACCOUNT__PLANS_FILE": str(plans), "MITTR_ACCOUNT__DEFAULT_PLAN": "free"}
    async with app_with(db_url, pool, env) as caller:
        client_id = uuid.UUID(caller.client_id)
        # New workspaces carry plan_id 'self-hosted', which this catalogue lacks: the default plan.
        status, body, _ = await caller.call("GET", "/api/v1/entitlements")
        assert status == 200, body
        assert (body["planId"], body["planName"], body["monthlyEventQuota"], body["endpoints"],
                body["maxRateLimitPerSec"], body["retentionDays"]) == ("free", "Free", 10000, 3, 10, 3)
        assert not any(body["features"].values())
        assert (await caller.call("GET", "/api/v1/me"))[1]["workspace"]["planId"] == "free"

        await pool.execute("UPDATE clients SET plan_id = 'growth' WHERE id = $1", client_id)
        status, body, _ = await caller.call("GET", "/api/v1/entitlements")
        assert (body["planId"], body["monthlyEventQuota"], body["endpoints"], body["retentionDays"]) == (
            "growth", 1000000, 50, 30)
        assert {name for name, on in body["features"].items() if on} == {"sso", "auditLogs"}
        assert (await caller.call("GET", "/api/v1/me"))[1]["workspace"]["planId"] == "growth"

        # The workspace's own quota (what ingest enforces) wins over the plan's.
        await pool.execute("UPDATE clients SET monthly_quota = 123 WHERE id = $1", client_id)
        assert (await caller.call("GET", "/api/v1/entitlements"))[1]["monthlyEventQuota"] == 123


# --- GET /egress-ips --------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "ips"), [
    ('["203.0.113.10"]', ["203.0.113.10"]),
    ("203.0.113.10, 2001:DB8::10,198.51.100.0/28", ["203.0.113.10", "2001:db8::10", "198.51.100.0/28"]),
])
async def test_egress_ips_come_from_the_environment(db_url: str, pool: Any, value: str, ips: list[str]) -> None:
    async with app_with(db_url, pool, {"MITTR_ACCOUNT__EGRESS_IPS": value}) as caller:
        status, body, _ = await caller.call("GET", "/api/v1/egress-ips")
        assert (status, body) == (200, {"ips": ips})
        token, _ = await person(pool, caller.client_id, "viewer")
        assert await as_person(caller, "GET", "/api/v1/egress-ips", token) == (200, {"ips": ips})
