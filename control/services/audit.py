"""The audit log: one append-only row per mutation, written in the mutation's own transaction.

Every service that changes configuration or access calls `record` with the connection of the
transaction that makes the change, so a change and its audit row commit (or roll back) together and
no route can forget it. Event ingestion and delivery outcomes are not audited here: they have their
own history (events, attempts) and would double the write load of the hot path.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import orjson

from control.jsonfmt import iso
from control.services.owned import owned_page
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import str_field

REDACTED = "[redacted]"
# Keys whose values never enter the audit log, wherever they appear in before/after.
SECRET_KEYS = frozenset({"signingSecret", "signing_secret", "password", "passwordHash", "password_hash",
                         "key", "keyHash", "key_hash", "token", "mtlsKey", "mtls_key", "secret",
                         "sw_ed25519_private", "standardWebhooksPrivateKey", "sourceConfig", "routingKey",
                         "keyPem", "privateKey", "private_key", "apiKey", "tokenHash", "token_hash",
                         "clientSecret", "client_secret"})


def redact(value: Any) -> Any:
    """A copy with secret material replaced, so exports and audit readers never see it."""
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_KEYS and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


# A JSON-escaped NUL (not an escaped backslash followed by "u0000"): jsonb cannot hold one, and a
# payload (stored as bytes) may carry it; the audit copy shows U+FFFD in its place.
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return _NUL_ESCAPE.sub(r"\1\\ufffd", orjson.dumps(redact(value), default=str).decode())


async def record(conn: asyncpg.Connection, who: Principal, action: str, resource: str,
                 resource_id: object | None = None, before: Any = None, after: Any = None) -> None:
    """Append one audit row (call it inside the transaction that makes the change)."""
    # Imported here: events -> event_types -> audit would otherwise be an import cycle.
    from control.services.events import time_ordered_ids

    await conn.execute(q("insert_audit_log"), time_ordered_ids(1)[0], who.client_id, who.project_id,
                       who.actor_type, who.actor_id, who.label, action, resource,
                       None if resource_id is None else str(resource_id), who.ip, _json(before), _json(after))


def audit_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "actor": {"type": row["actor_type"], "id": str(row["actor_id"]) if row["actor_id"] else None,
                  "label": row["actor_label"]},
        "action": row["action"],
        "resource": row["resource"],
        "resourceId": row["resource_id"],
        "ip": row["ip"],
        "before": row["before"],
        "after": row["after"],
        "projectId": str(row["project_id"]) if row["project_id"] else None,
        "createdAt": iso(row["created_at"]),
    }


def _name_filter(raw: str | None, name: str) -> str | None:
    return None if raw is None or raw == "" else str_field(raw, name, max_len=64)


class AuditLogService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool

    async def list(self, who: Principal, limit: int, cursor: str | None, resource: str | None = None,
                   action: str | None = None) -> dict[str, Any]:
        """The workspace's rows (under X-Project-ID: that project's), newest first, keyset-paged."""
        filters = (_name_filter(resource, "resource"), _name_filter(action, "action"))
        return await owned_page(self.pool, "list_audit_logs", who, limit, cursor, audit_json, filters)
