"""Every route family, driven from the route table itself: no key → 401, a key without the scope →
403, another tenant's ids → 404 (never 403), malformed JSON → 400. New routes are covered as they
are declared."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import api.app  # noqa: F401 - registers every route
from api.routes import Route
from api.routing import ROUTES
from control.services.keys import create_client, create_key
from control.services.users import add_member, create_user
from tests.integration.conftest import Caller
from tests.support.certs import make_pki

AUTHED = [r for r in ROUTES.routes if r.scope is not None]
RULE = {"name": "r", "condition": {"metric": "failure_rate", "operator": "gt", "value": 0.1, "window": "5m"},
        "action": {"type": "webhook", "webhookUrl": "https://hooks.example.com/alert"}}
CONNECTOR = {"name": "ops", "type": "webhook", "config": {"webhookUrl": "https://hooks.example.com/c"}}
WITH_ID = [r for r in AUTHED if "{" in r.path]
WITH_BODY = [r for r in AUTHED if r.body is not None]


def rid(r: Route) -> str:
    return f"{r.method} {r.path}"


@pytest.fixture
async def tenant_a(app_client: Caller, pool: Any) -> dict[str, str]:
    """One of each resource, owned by the app_client's tenant."""
    _, ep, _ = await app_client.call("POST", "/api/v1/endpoints",
                                     {"url": "https://a.example.com/h", "eventTypes": ["a.*"]})
    _, ev, _ = await app_client.call("POST", "/api/v1/events",
                                     {"destination": "https://a.example.com/d", "payload": {"x": 1}},
                                     {"X-Idempotency-Key": "sec-1"})
    status, et, _ = await app_client.call("POST", "/api/v1/event-types", {"name": "a.created", "description": "d"})
    assert status == 201, et
    attempt_id = uuid.uuid4()
    task_id = await pool.fetchval("SELECT id FROM tasks WHERE event_id = $1", uuid.UUID(ev["id"]))
    await pool.execute(
        "INSERT INTO delivery_attempts (id, task_id, event_id, client_id, attempt_number, status_code, outcome,"
        " duration_ms, processing_overhead_us, attempted_at) VALUES ($1, $2, $3, $4, 1, 500, 'failure', 5, 50, $5)",
        attempt_id, task_id, uuid.UUID(ev["id"]), uuid.UUID(app_client.client_id), datetime.now(UTC))
    await pool.execute("UPDATE events SET status = 'dead' WHERE id = $1", uuid.UUID(ev["id"]))
    status, project, _ = await app_client.call("POST", "/api/v1/projects", {"name": "p"})
    assert status == 201, project
    client_id = uuid.UUID(app_client.client_id)
    member = await create_user(pool, "member" + "@" + "a.example")
    await add_member(pool, client_id, member["id"], "viewer")
    invite_id = await pool.fetchval(
        "INSERT INTO auth_tokens (token_hash, kind, client_id, email, role, expires_at) VALUES"
        " ($1, 'invite', $2, $3, 'viewer', now() + interval '1 day') RETURNING id",
        os.urandom(32), client_id, "invitee" + "@" + "a.example")
    status, rule, _ = await app_client.call("POST", "/api/v1/alerting/rules", RULE)
    assert status == 201, rule
    status, connector, _ = await app_client.call("POST", "/api/v1/connectors", CONNECTOR)
    assert status == 201, connector
    status, inbound, _ = await app_client.call("POST", "/api/v1/inbound-endpoints",
                                               {"name": "hub", "pathSuffix": "sec-hub", "source": "docker-hub",
                                                "sourceConfig": {}})
    assert status == 201, inbound
    status, sub_account, _ = await app_client.call("POST", "/api/v1/sub-accounts", {"name": "s", "subID": "s1"})
    assert status == 201, sub_account
    status, portal, _ = await app_client.call("POST", f"/api/v1/sub-accounts/{sub_account['id']}/sessions", {})
    assert status == 201, portal
    return {"endpoint": ep["id"], "event": ev["id"], "event_type": et["id"], "event_type_name": et["name"],
            "delivery": str(attempt_id), "project": project["id"],
            "team_member": str(member["id"]), "invite": str(invite_id),
            "sub_account": sub_account["id"], "portal_session": portal["session"]["id"],
            "alert_rule": rule["id"], "connector": connector["name"], "inbound": inbound["id"]}


def fill(path: str, ids: dict[str, str]) -> str:
    if path.startswith("/api/v1/events/"):
        key = "event"
    elif path.startswith("/api/v1/deliveries/"):
        key = "delivery"
    elif path.startswith("/api/v1/event-types/"):
        key = "event_type"
    elif path.startswith("/api/v1/team/invites/"):
        key = "invite"
    elif path.startswith("/api/v1/team/"):
        key = "team_member"
    elif path.startswith("/api/v1/projects/"):
        key = "project"
    elif path.startswith("/api/v1/sub-accounts/"):
        key = "sub_account"
    elif path.startswith("/api/v1/alerting/rules/"):
        key = "alert_rule"
    elif path.startswith("/api/v1/inbound-endpoints/"):
        key = "inbound"
    else:
        key = "endpoint"
    name = ids["connector"] if path.startswith("/api/v1/connectors/") else ids["event_type_name"]
    filled = path.replace("{id}", ids[key]).replace("{n}", "1").replace("{name}", name)
    filled = filled.replace("{sessionId}", ids.get("portal_session", ""))
    return filled + ("?v1=1&v2=1" if filled.endswith("/versions/diff") else "")


def valid_body(r: Route, tmp: Path) -> Any:
    """A body that passes validation, so that ownership is what decides the answer."""
    if r.path.endswith("/mtls"):
        pki = make_pki(tmp)
        return {"certPem": pki.client_cert, "keyPem": pki.client_key}
    if r.path.startswith("/api/v1/event-types/"):
        return {"description": "changed"}
    if r.path.startswith("/api/v1/team/"):
        return {"role": "viewer"}
    if r.path.startswith("/api/v1/projects/"):
        return {"name": "changed"}
    if r.path.startswith("/api/v1/sub-accounts/"):
        return {"ttlSeconds": 600} if r.path.endswith("/sessions") else {"name": "changed"}
    if r.path == "/api/v1/events/{id}":
        return {"payload": {"changed": True}}
    if r.path.startswith("/api/v1/alerting/rules/"):
        return {**RULE, "description": "changed"}
    if r.path.startswith("/api/v1/connectors/"):
        return {"notify": ["alerts"]}
    return {"description": "changed"}


@pytest.mark.parametrize("route", AUTHED, ids=rid)
async def test_no_key_is_401(app_client: Caller, route: Route, tenant_a: dict[str, str]) -> None:
    status, body, _ = await app_client.call(route.method, fill(route.path, tenant_a),
                                            {} if route.body is not None else None, key="")
    assert status == 401 and body["code"] == "UNAUTHORIZED", body


@pytest.mark.parametrize("route", AUTHED, ids=rid)
async def test_missing_scope_is_403(app_client: Caller, pool: Any, route: Route, tenant_a: dict[str, str]) -> None:
    scoped = await create_key(pool, uuid.UUID(app_client.client_id), "scoped", scopes=["nothing:read"])
    status, body, _ = await app_client.call(route.method, fill(route.path, tenant_a),
                                            {} if route.body is not None else None, key=scoped.key)
    assert status == 403 and body["code"] == "FORBIDDEN", body


@pytest.mark.parametrize("route", WITH_ID, ids=rid)
async def test_other_tenants_ids_are_404(app_client: Caller, pool: Any, route: Route, tenant_a: dict[str, str],
                                         tmp_path: Path) -> None:
    other = await create_client(pool, "tenant-b")
    key = (await create_key(pool, other["id"], "admin")).key
    path = fill(route.path, tenant_a)
    body = valid_body(route, tmp_path) if route.body is not None else None
    status, answer, _ = await app_client.call(route.method, path, body, key=key)
    assert status == 404 and answer["code"] == "NOT_FOUND", (path, status, answer)
    # ...and the owner is answered (the 404 above is about ownership, not a bad path)
    status, _, _ = await app_client.call(route.method, path, body)
    assert status != 404 or route.method == "DELETE", (path, status)


@pytest.mark.parametrize("route", WITH_BODY, ids=rid)
async def test_malformed_json_is_400(app_client: Caller, route: Route, tenant_a: dict[str, str]) -> None:
    status, body, _ = await app_client.call(route.method, fill(route.path, tenant_a), raw=b'{"broken": ',
                                            headers={"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 400 and body["code"] in ("BAD_REQUEST", "VALIDATION_ERROR"), body


async def test_lists_never_show_another_tenants_rows(app_client: Caller, pool: Any, tenant_a: dict[str, str]) -> None:
    other = await create_client(pool, "tenant-b")
    key = (await create_key(pool, other["id"], "admin")).key
    for path in ("/api/v1/events", "/api/v1/endpoints", "/api/v1/event-types", "/api/v1/deliveries?range=30d"):
        status, body, _ = await app_client.call("GET", path, key=key)
        assert status == 200 and body["data"] == [], path
        status, mine, _ = await app_client.call("GET", path)
        assert status == 200 and mine["data"], path


async def test_scopes_split_read_from_write(app_client: Caller, pool: Any) -> None:
    reader = await create_key(pool, uuid.UUID(app_client.client_id), "reader", scopes=["events:read"])
    status, _, _ = await app_client.call("GET", "/api/v1/events", key=reader.key)
    assert status == 200
    status, body, _ = await app_client.call("POST", "/api/v1/events", {"destination": "https://x.example.com",
                                                                        "payload": {}},
                                            {"X-Idempotency-Key": "r1"}, key=reader.key)
    assert status == 403 and body["code"] == "FORBIDDEN"
    writer = await create_key(pool, uuid.UUID(app_client.client_id), "writer", scopes=["events:write"])
    status, _, _ = await app_client.call("GET", "/api/v1/events", key=writer.key)
    assert status == 200, "write implies read"
