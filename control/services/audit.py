"""The audit log: one append-only row per mutation, written in the mutation's own transaction.

Every service that changes configuration or access calls `record` with the connection of the
transaction that makes the change, so a change and its audit row commit (or roll back) together and
no route can forget it. Event ingestion and delivery outcomes are not audited here: they have their
own history (events, attempts) and would double the write load of the hot path.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from control.services.events import time_ordered_ids
from control.services.principal import Principal
from control.store.queries import q

REDACTED = "[redacted]"
# Keys whose values never enter the audit log, wherever they appear in before/after.
SECRET_KEYS = frozenset({"signingSecret", "signing_secret", "password", "passwordHash", "password_hash",
                         "key", "keyHash", "key_hash", "token", "mtlsKey", "mtls_key", "secret",
                         "sw_ed25519_private", "standardWebhooksPrivateKey", "sourceConfig", "routingKey"})


def redact(value: Any) -> Any:
    """A copy with secret material replaced, so exports and audit readers never see it."""
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_KEYS and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(redact(value), default=str).decode()


async def record(conn: asyncpg.Connection, who: Principal, action: str, resource: str,
                 resource_id: object | None = None, before: Any = None, after: Any = None) -> None:
    """Append one audit row (call it inside the transaction that makes the change)."""
    await conn.execute(q("insert_audit_log"), time_ordered_ids(1)[0], who.client_id, who.project_id,
                       who.actor_type, who.actor_id, who.label, action, resource,
                       None if resource_id is None else str(resource_id), who.ip, _json(before), _json(after))
