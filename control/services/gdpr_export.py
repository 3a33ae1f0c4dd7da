"""GDPR export: a workspace's data as one JSON document, produced page by page.

Every section is read in keyset pages (ascending, by an indexed key) and each page is serialised
and handed on before the next is read, so memory stays bounded by one page whatever the workspace
holds; events' pages are bounded by payload bytes as well as by count. The shapes are the API's
where the API shows the resource, and leave out every hash, digest, secret and private key.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import asyncpg
import orjson

from control.jsonfmt import iso
from control.services.alerting import history_json, rule_json
from control.services.audit import audit_json
from control.services.billing import invoice_json
from control.services.connectors import connector_json
from control.services.endpoint_versions import version_json
from control.services.endpoints import endpoint_json
from control.services.event_types import event_type_json
from control.services.events import attempt_json, event_summary_json
from control.services.inbound import inbound_json
from control.services.sub_accounts import session_json as portal_session_json
from control.services.sub_accounts import sub_account_json
from control.store.queries import q

EXPORT_PAGE = 500
EVENT_PAGE = 200
EVENT_PAGE_BYTES = 2 * 1024 * 1024   # payload bytes per page of events (a single larger one still goes)


async def json_document(head: dict[str, Any],
                        sections: Iterable[tuple[str, AsyncIterator[Sequence[Any]]]]) -> AsyncIterator[bytes]:
    """One JSON object: the members of `head`, then one array per section, written page by page
    (a page of items is one chunk), so the document is never whole in memory."""
    opening = orjson.dumps(head)
    yield opening[:-1]
    separator = b"," if head else b""
    for name, pages in sections:
        yield separator + orjson.dumps(name) + b":["
        separator = b","
        first = True
        async for page in pages:
            if page:
                yield (b"" if first else b",") + b",".join(orjson.dumps(item) for item in page)
                first = False
        yield b"]"
    yield b"}"


def workspace_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "planId": row["plan_id"],
            "monthlyQuota": row["monthly_quota"], "onboardedAt": iso(row["onboarded_at"]),
            "createdAt": iso(row["created_at"])}


def member_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "email": row["email"], "name": row["name"], "role": row["role"],
            "emailVerified": row["email_verified_at"] is not None, "joinedAt": iso(row["joined_at"]),
            "createdAt": iso(row["created_at"])}


def invitation_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"email": row["email"], "role": row["role"], "createdAt": iso(row["created_at"]),
            "expiresAt": iso(row["expires_at"]), "usedAt": iso(row["used_at"])}


def session_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "userId": _id(row["user_id"]), "keyId": _id(row["key_id"]), "ip": row["ip"],
            "userAgent": row["user_agent"], "createdAt": iso(row["created_at"]),
            "lastSeenAt": iso(row["last_seen_at"]), "expiresAt": iso(row["expires_at"]),
            "revokedAt": iso(row["revoked_at"])}


def api_key_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "keyPrefix": row["key_prefix"],
            "projectId": _id(row["project_id"]), "scopes": list(row["scopes"]), "rateLimit": row["rate_limit"],
            "isActive": row["is_active"], "expiresAt": iso(row["expires_at"]),
            "lastUsedAt": iso(row["last_used_at"]), "createdAt": iso(row["created_at"]),
            "createdBy": _id(row["created_by"]), "deletedAt": iso(row["deleted_at"])}


def project_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "environment": row["environment"],
            "createdAt": iso(row["created_at"]), "updatedAt": iso(row["updated_at"])}


def exported_endpoint(row: asyncpg.Record) -> dict[str, Any]:
    return {**endpoint_json(row), "deletedAt": iso(row["deleted_at"])}


def delivery_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "endpointId": _id(row["endpoint_id"]), "status": row["status"],
            "attempts": row["attempts"], "maxAttempts": row["max_attempts"], "priority": row["priority"],
            "nextAttemptAt": iso(row["next_attempt_at"]), "lastError": row["last_error"],
            "createdAt": iso(row["created_at"]), "updatedAt": iso(row["updated_at"]),
            "deliveredAt": iso(row["delivered_at"])}


def exported_event(row: asyncpg.Record, deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    return {**event_summary_json(row), "projectId": _id(row["project_id"]),
            "payload": orjson.Fragment(row["payload"]), "headers": row["headers"],
            "delaySeconds": row["delay_seconds"], "updatedAt": iso(row["updated_at"]), "deliveries": deliveries}


def exported_subscription(row: asyncpg.Record) -> dict[str, Any]:
    """The billing subscription as stored (the API's shape names the plan from the live catalogue,
    which an export should not depend on)."""
    scheduled = ({"planId": row["scheduled_plan_id"], "cycle": row["scheduled_cycle"]}
                 if row["scheduled_plan_id"] is not None else None)
    return {"provider": row["provider"], "planId": row["plan_id"], "cycle": row["cycle"], "status": row["status"],
            "currentPeriodStart": iso(row["current_period_start"]), "currentPeriodEnd": iso(row["current_period_end"]),
            "cancelAtPeriodEnd": row["cancel_at_period_end"], "scheduledChange": scheduled,
            "creditCents": row["credit_cents"], "createdAt": iso(row["created_at"]),
            "updatedAt": iso(row["updated_at"])}


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


async def _pages(conn: asyncpg.Connection, query: str, client_id: uuid.UUID, limit: int, key: tuple[str, str],
                 *extra: object) -> AsyncIterator[list[asyncpg.Record]]:
    """Keyset pages of `query`, ascending by the two `key` columns, until one comes back empty."""
    after: tuple[Any, Any] = (None, None)
    while True:
        rows = await conn.fetch(q(query), client_id, *after, limit, *extra)
        if not rows:
            return
        yield rows
        after = (rows[-1][key[0]], rows[-1][key[1]])


async def _shaped(pages: AsyncIterator[list[asyncpg.Record]],
                  shape: Callable[[asyncpg.Record], dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    async for rows in pages:
        yield [shape(r) for r in rows]


async def _events(conn: asyncpg.Connection, client_id: uuid.UUID) -> AsyncIterator[list[dict[str, Any]]]:
    """Events with their payloads and, nested, their deliveries."""
    async for rows in _pages(conn, "gdpr_events", client_id, EVENT_PAGE, ("created_at", "id"), EVENT_PAGE_BYTES):
        deliveries: defaultdict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        for t in await conn.fetch(q("gdpr_event_tasks"), [r["id"] for r in rows]):
            deliveries[t["event_id"]].append(delivery_json(t))
        yield [exported_event(r, deliveries[r["id"]]) for r in rows]


async def _versions(conn: asyncpg.Connection, client_id: uuid.UUID) -> AsyncIterator[list[dict[str, Any]]]:
    """Every endpoint's configuration history, endpoint by endpoint."""
    async for endpoints in _pages(conn, "gdpr_endpoints", client_id, EXPORT_PAGE, ("created_at", "id")):
        for ep in endpoints:
            after = None
            while rows := await conn.fetch(q("gdpr_endpoint_versions"), ep["id"], client_id, after, EXPORT_PAGE):
                yield [version_json(str(ep["id"]), r) for r in rows]
                after = rows[-1]["version"]


async def _portal_sessions(conn: asyncpg.Connection, client_id: uuid.UUID) -> AsyncIterator[list[dict[str, Any]]]:
    """Every sub-account's portal sessions (their metadata: no token digest), sub-account by sub-account."""
    async for accounts in _pages(conn, "gdpr_sub_accounts", client_id, EXPORT_PAGE, ("created_at", "id")):
        for account in accounts:
            after: tuple[Any, Any] = (None, None)
            while rows := await conn.fetch(q("gdpr_portal_sessions"), account["id"], client_id, *after, EXPORT_PAGE):
                yield [portal_session_json(r, r["now"]) for r in rows]
                after = (rows[-1]["created_at"], rows[-1]["id"])


def export_sections(conn: asyncpg.Connection,
                    client_id: uuid.UUID) -> list[tuple[str, AsyncIterator[Sequence[Any]]]]:
    def paged(query: str, shape: Callable[[asyncpg.Record], dict[str, Any]],
              key: tuple[str, str] = ("created_at", "id")) -> AsyncIterator[list[dict[str, Any]]]:
        return _shaped(_pages(conn, query, client_id, EXPORT_PAGE, key), shape)

    return [
        ("members", paged("gdpr_members", member_json, ("joined_at", "id"))),
        ("invitations", paged("gdpr_invitations", invitation_json, ("created_at", "token_hash"))),
        ("sessions", paged("gdpr_sessions", session_json)),
        ("apiKeys", paged("gdpr_api_keys", api_key_json)),
        ("projects", paged("gdpr_projects", project_json)),
        ("endpoints", paged("gdpr_endpoints", exported_endpoint)),
        ("endpointVersions", _versions(conn, client_id)),
        ("eventTypes", paged("gdpr_event_types", event_type_json)),
        ("subAccounts", paged("gdpr_sub_accounts", sub_account_json)),
        ("portalSessions", _portal_sessions(conn, client_id)),
        ("events", _events(conn, client_id)),
        ("attempts", paged("gdpr_attempts", attempt_json, ("attempted_at", "id"))),
        ("inboundEndpoints", paged("gdpr_inbound_endpoints", inbound_json)),   # sourceConfig masked
        ("connectors", paged("gdpr_connectors", lambda r: connector_json(r, {}))),   # secrets left out
        ("alertRules", paged("gdpr_alert_rules", lambda r: rule_json(r, {}))),
        ("alertHistory", paged("gdpr_alert_history", history_json)),
        ("subscriptions", paged("gdpr_subscriptions", exported_subscription, ("created_at", "client_id"))),
        ("invoices", paged("gdpr_invoices", invoice_json)),
        ("auditLogs", paged("gdpr_audit_logs", audit_json)),
    ]
