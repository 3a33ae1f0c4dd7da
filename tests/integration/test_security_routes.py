"""Tenant isolation and scopes across route families, plus the shared pieces of the route walks:
make_tenant (one of each resource), fill (a route's path with real ids) and valid_body. The walks
themselves (no key → 401, no scope → 403, another tenant's ids → 404, malformed JSON → 400) are in
test_route_walks.py; the permission matrix is in test_route_matrix.py."""

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
from tests.support.saml_idp import certificate_pem

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
    return await make_tenant(app_client, pool)


async def make_tenant(app_client: Caller, pool: Any) -> dict[str, str]:
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
    member = await create_user(pool, f"member-{uuid.uuid4().hex[:8]}" + "@" + "a.example")
    await add_member(pool, client_id, member["id"], "viewer")
    invite_id = await pool.fetchval(
        "INSERT INTO auth_tokens (token_hash, kind, client_id, email, role, expires_at) VALUES"
        " ($1, 'invite', $2, $3, 'viewer', now() + interval '1 day') RETURNING id",
        os.urandom(32), client_id, f"invitee-{uuid.uuid4().hex[:8]}" + "@" + "a.example")
    status, rule, _ = await app_client.call("POST", "/api/v1/alerting/rules", RULE)
    assert status == 201, rule
    status, connector, _ = await app_client.call("POST", "/api/v1/connectors", CONNECTOR)
    assert status == 201, connector
    status, inbound, _ = await app_client.call("POST", "/api/v1/inbound-endpoints",
                                               {"name": "hub", "pathSuffix": f"sec-hub-{uuid.uuid4().hex[:8]}",
                                                "source": "docker-hub", "sourceConfig": {}})
    assert status == 201, inbound
    status, sub_account, _ = await app_client.call("POST", "/api/v1/sub-accounts", {"name": "s", "subID": "s1"})
    assert status == 201, sub_account
    status, portal, _ = await app_client.call("POST", f"/api/v1/sub-accounts/{sub_account['id']}/sessions", {})
    assert status == 201, portal
    status, scim_token, _ = await app_client.call("POST", "/api/v1/scim/tokens", {"name": "idp"})
    assert status == 201, scim_token
    status, saml, _ = await app_client.call("POST", "/api/v1/sso/saml", {
        "slug": "idp", "idpEntityId": "https://idp.example/", "ssoUrl": "https://idp.example/sso",
        "certificates": [certificate_pem()]})
    assert status == 201, saml
    return {"endpoint": ep["id"], "event": ev["id"], "event_type": et["id"], "event_type_name": et["name"],
            "delivery": str(attempt_id), "project": project["id"],
            "team_member": str(member["id"]), "invite": str(invite_id),
            "sub_account": sub_account["id"], "portal_session": portal["session"]["id"],
            "alert_rule": rule["id"], "connector": connector["name"], "inbound": inbound["id"],
            "scim_token": scim_token["id"], "saml_connection": saml["id"]}


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
    elif path.startswith("/api/v1/scim/tokens/"):
        key = "scim_token"
    elif path.startswith("/api/v1/sso/saml/"):
        key = "saml_connection"
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
    if r.path.startswith(("/api/v1/scim/", "/api/v1/sso/")):
        return {"name": "changed"}
    return {"description": "changed"}


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
