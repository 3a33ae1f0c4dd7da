"""API keys managed through the API (`/api/v1/api-keys`) and `mittr keys create`: one code path.

The raw key is returned once, at creation; only its SHA-256 and an 8-character prefix are kept. A
caller never gives a key more than it holds itself (control/policy/key_grants.py): not a scope it
lacks, not another project than the one it is bound to, not a later expiry than its own. A deleted
key keeps its row (deleted_at) and stops authenticating within KeyAuthenticator's second; so do the
sessions made from it. Each create and delete leaves an audit row, in its own transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from control.errors import BadRequest, Forbidden, NotFound
from control.jsonfmt import iso
from control.policy.access import valid_scope
from control.policy.key_grants import FULL, MAX_SCOPES, key_scopes, ungrantable
from control.services import audit
from control.services.deliveries import rfc3339
from control.services.keys import create_key
from control.services.owned import owned_page, owned_row
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import int_field, need_object, str_field, str_list, uuid_or_404

FIELDS = frozenset({"name", "scopes", "rateLimit", "expiresAt", "projectId"})
MAX_NAME = 200
MAX_RATE_LIMIT = 100_000     # requests per second; 0 = unlimited, null = api.default_rate_limit


@dataclass(frozen=True, slots=True)
class KeyRequest:
    name: str
    scopes: tuple[str, ...]
    rate_limit: int | None
    expires_at: datetime | None
    project_id: uuid.UUID | None


def parse_key_request(body: Any, now: datetime) -> KeyRequest:
    """The body of POST /api/v1/api-keys (and the CLI's flags), each refusal naming its field."""
    data = need_object(body)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    if data.get("name") is None:
        raise BadRequest("name: required")
    name = str_field(data["name"], "name", max_len=MAX_NAME, allow_empty=False).strip()
    rate = data.get("rateLimit")
    expires = data.get("expiresAt")
    expires_at = None if expires is None else rfc3339(str_field(expires, "expiresAt", max_len=64), "expiresAt")
    if expires_at is not None and expires_at <= now:
        raise BadRequest(f"expiresAt: {iso(expires_at)} is not in the future")
    project = data.get("projectId")
    return KeyRequest(name, _scopes(data.get("scopes")),
                      None if rate is None else int_field(rate, "rateLimit", 0, MAX_RATE_LIMIT), expires_at,
                      None if project is None else uuid_or_404(str_field(project, "projectId", 64), "project"))


def _scopes(value: Any) -> tuple[str, ...]:
    """Omitted: a full-access key (`["*"]`). An empty list is refused rather than read as `*`."""
    if value is None:
        return (FULL,)
    items = str_list(value, "scopes", max_items=MAX_SCOPES, max_len=64, allow_empty_list=False)
    for i, scope in enumerate(items):
        if not valid_scope(scope):
            raise BadRequest(f"scopes[{i}]: unknown scope {scope!r} (use `<family>:read`, `<family>:write`, "
                             "`<family>:*` or `*`)")
    return tuple(dict.fromkeys(items))


def holds_everything(who: Principal) -> bool:
    """A full-access key (`*`, or the empty list of older keys), an admin, or the system (CLI)."""
    if who.key_id is not None or who.role is None:
        return not who.scopes or FULL in who.scopes
    return who.role == "admin"


def check_grant(who: Principal, scopes: list[str] | tuple[str, ...], verb: str) -> None:
    """403 unless `who` holds everything `scopes` would allow (privilege escalation otherwise)."""
    refused = ungrantable(scopes, who.allows, holds_everything(who))
    if refused is not None:
        scope, lacking = refused
        raise Forbidden(f"scopes: cannot {verb} a key with {scope!r}: the caller lacks {lacking!r}")


def key_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "keyPrefix": row["key_prefix"],
            "scopes": key_scopes(row["scopes"]), "rateLimit": row["rate_limit"],
            "expiresAt": iso(row["expires_at"]),
            "projectId": str(row["project_id"]) if row["project_id"] else None,
            "isActive": row["is_active"], "createdAt": iso(row["created_at"])}


async def _project(conn: asyncpg.Connection, who: Principal, wanted: uuid.UUID | None) -> uuid.UUID | None:
    """A caller scoped to a project (a bound key, or X-Project-ID) makes keys of that project only."""
    if who.project_id is not None:
        if wanted is not None and wanted != who.project_id:
            raise NotFound("project not found")
        return who.project_id
    if wanted is not None and await conn.fetchval(q("project_of_client"), wanted, who.client_id) is None:
        raise NotFound("project not found")
    return wanted


async def _expiry(conn: asyncpg.Connection, who: Principal, wanted: datetime | None) -> datetime | None:
    """A key cannot outlive the key that made it: no expiry given means the maker's."""
    ceiling = None if who.key_id is None else await conn.fetchval(q("api_key_expiry"), who.key_id)
    if ceiling is None:
        return wanted
    if wanted is None:
        return ceiling  # type: ignore[no-any-return]
    if wanted > ceiling:
        raise Forbidden(f"expiresAt: a key cannot make a key that outlives it (this one expires {iso(ceiling)})")
    return wanted


async def create_api_key(conn: asyncpg.Connection, who: Principal, body: Any,
                         now: datetime | None = None) -> dict[str, Any]:
    """Call inside a transaction: the key and its audit row commit together. Returns the raw key."""
    req = parse_key_request(body, now or datetime.now(UTC))
    check_grant(who, req.scopes, "grant")
    project_id = await _project(conn, who, req.project_id)
    expires_at = await _expiry(conn, who, req.expires_at)
    made = await create_key(conn, who.client_id, req.name, list(req.scopes), req.rate_limit, expires_at,
                            project_id, created_by=who.user_id)
    out = key_json({"id": made.id, "name": req.name, "key_prefix": made.key_prefix, "scopes": req.scopes,
                    "rate_limit": req.rate_limit, "expires_at": expires_at, "project_id": project_id,
                    "is_active": True, "created_at": made.created_at})
    await audit.record(conn, who, "create", "api_key", made.id, after=out)
    return {**out, "key": made.key}


async def delete_api_key(conn: asyncpg.Connection, who: Principal, raw_id: str) -> None:
    """Soft delete, inside a transaction. A key may delete itself, and other keys only when it could
    have made them (so an `api-keys:write` key cannot take the admin key away)."""
    row = await owned_row(conn, "lock_api_key", raw_id, who, "API key")
    if row["id"] != who.key_id:
        check_grant(who, row["scopes"], "delete")
    await conn.execute(q("delete_api_key"), row["id"])
    await audit.record(conn, who, "delete", "api_key", row["id"], before=key_json(row))


class ApiKeyService:
    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        self.pool = pool

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await create_api_key(conn, who, body)

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await owned_page(self.pool, "list_api_keys", who, limit, cursor, key_json)

    async def delete(self, who: Principal, raw_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await delete_api_key(conn, who, raw_id)
