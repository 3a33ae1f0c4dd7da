"""Sub-accounts (a workspace's own customers) and the portal sessions minted for them.

A sub-account owns endpoints and events through their `sub_account_id`; a Principal carrying one
(a portal session, or X-Sub-Account-ID on the main API) sees and makes only that one's rows.
Deactivating keeps its history, refuses its new events and endpoints, and revokes its sessions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from control.errors import ApiError, BadRequest, Conflict, NotFound
from control.jsonfmt import decode_cursor, iso, page
from control.policy.tokens import digest, new_token
from control.services import audit
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import int_field, need_object, no_nul, str_field, url_field, uuid_or_404

MAX_NAME = 200
MAX_SUB_ID = 128
MAX_METADATA_BYTES = 8192
DEFAULT_SESSION_S = 3600          # the seed's "default 1h, sliding-refresh"
MIN_SESSION_S = 60
MAX_SESSION_S = 86400
EXCHANGE_TTL_S = 300              # the one-time exchange token's life: a URL is meant to be opened now
EXCHANGE_PREFIX = "mtx_"
SESSION_PREFIX = "mtp_"


class SubAccountInactive(ApiError):
    status, code = 409, "SUB_ACCOUNT_INACTIVE"


def inactive(sub_id: str) -> SubAccountInactive:
    return SubAccountInactive(f"sub-account {sub_id!r} is deactivated; its events and endpoints are refused "
                              "(its history stays readable)")


async def refuse_if_inactive(conn: asyncpg.Connection, who: Principal, lock: bool = False) -> None:
    """409 SUB_ACCOUNT_INACTIVE when the caller's sub-account is deactivated. With `lock`, its row
    stays share-locked until the transaction ends, so a deactivation cannot slip in before the
    commit of what is being written for it (it waits, or committed first and is seen here)."""
    if who.sub_account_id is None:
        return
    row = await conn.fetchrow(q("share_lock_active_sub_account" if lock else "sub_account_state"),
                              who.sub_account_id, who.client_id)
    if row is not None and not row["active"]:
        raise inactive(row["sub_id"])


@dataclass(frozen=True, slots=True)
class SubAccountInput:
    name: str | None
    sub_id: str | None
    metadata: dict[str, Any] | None


def parse_sub_account(body: Any, creating: bool) -> SubAccountInput:
    """`name`, `subID` (the workspace's id for its customer) and `metadata` (an object, ≤ 8 KiB)."""
    data = need_object(body)
    unknown = sorted(set(data) - {"name", "subID", "metadata"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    if creating:
        for field in ("name", "subID"):
            if data.get(field) is None:
                raise BadRequest(f"{field}: required")
    name: str | None = None
    sub_id: str | None = None
    metadata: dict[str, Any] | None = None
    if data.get("name") is not None:
        name = str_field(data["name"], "name", max_len=MAX_NAME, allow_empty=False).strip()
    if data.get("subID") is not None:
        sub_id = str_field(data["subID"], "subID", max_len=MAX_SUB_ID, allow_empty=False)
        if sub_id != sub_id.strip() or any(c.isspace() or not c.isprintable() for c in sub_id):
            raise BadRequest("subID: must not contain spaces or control characters")
    if data.get("metadata") is not None:
        metadata = no_nul(need_object(data["metadata"], "metadata"), "metadata")
        if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
            raise BadRequest(f"metadata: larger than {MAX_METADATA_BYTES} bytes as JSON")
    return SubAccountInput(name, sub_id, metadata)


@dataclass(frozen=True, slots=True)
class SessionInput:
    return_url: str | None
    ttl_s: int


def parse_session(body: Any) -> SessionInput:
    """`returnURL` (where the portal's back link goes) and `ttlSeconds`: the session's idle window,
    slid forward on every request (default 1 h)."""
    data = need_object(body if body is not None else {})
    unknown = sorted(set(data) - {"returnURL", "ttlSeconds"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    return_url = url_field(data["returnURL"], "returnURL") if data.get("returnURL") is not None else None
    ttl = DEFAULT_SESSION_S
    if data.get("ttlSeconds") is not None:
        ttl = int_field(data["ttlSeconds"], "ttlSeconds", MIN_SESSION_S, MAX_SESSION_S)
    return SessionInput(return_url, ttl)


def sub_account_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "subID": row["sub_id"],
        "metadata": row["metadata"],
        "active": row["deactivated_at"] is None,
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "deactivatedAt": iso(row["deactivated_at"]),
    }


def session_state(row: asyncpg.Record | dict[str, Any], now: Any) -> str:
    """pending (not exchanged yet), active, expired or revoked."""
    if row["revoked_at"] is not None:
        return "revoked"
    if row["exchanged_at"] is None:
        return "pending" if row["exchange_expires_at"] > now else "expired"
    return "active" if row["expires_at"] > now else "expired"


def session_json(row: asyncpg.Record | dict[str, Any], now: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "subAccountId": str(row["sub_account_id"]),
        "status": session_state(row, now),
        "returnURL": row["return_url"],
        "ttlSeconds": row["idle_seconds"],
        "createdAt": iso(row["created_at"]),
        "exchangedAt": iso(row["exchanged_at"]),
        "lastSeenAt": iso(row["last_seen_at"]),
        "expiresAt": iso(row["expires_at"] if row["exchanged_at"] is not None else row["exchange_expires_at"]),
        "revokedAt": iso(row["revoked_at"]),
    }


async def _page(db: asyncpg.Pool, query: str, scope: tuple[object, ...], limit: int, cursor: str | None,
                shape: Callable[[asyncpg.Record], dict[str, Any]]) -> dict[str, Any]:
    """One keyset page, newest first (`{data, pagination}`)."""
    after, after_id = decode_cursor(cursor)
    rows = await db.fetch(q(query), *scope, after, after_id, limit + 1)
    return page([shape(r) for r in rows], list(rows), limit)


class SubAccountService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool

    async def create(self, who: Principal, body: Any) -> dict[str, Any]:
        given = parse_sub_account(body, creating=True)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("insert_sub_account"), uuid.uuid4(), who.client_id, given.name,
                                      given.sub_id, given.metadata or {})
            if row is None:
                raise Conflict(f"subID {given.sub_id!r} is already used in this workspace")
            out = sub_account_json(row)
            await audit.record(conn, who, "create", "sub_account", row["id"], after=out)
        return out

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        return await _page(self.pool, "list_sub_accounts", (who.client_id,), limit, cursor, sub_account_json)

    async def _row(self, db: asyncpg.Pool | asyncpg.Connection, who: Principal, raw_id: str,
                   lock: bool = False) -> asyncpg.Record:
        row = await db.fetchrow(q("lock_sub_account" if lock else "get_sub_account"),
                                uuid_or_404(raw_id, "sub-account"), who.client_id)
        if row is None:
            raise NotFound("sub-account not found")
        return row

    async def get(self, who: Principal, raw_id: str) -> dict[str, Any]:
        return sub_account_json(await self._row(self.pool, who, raw_id))

    async def update(self, who: Principal, raw_id: str, body: Any) -> dict[str, Any]:
        given = parse_sub_account(body, creating=False)
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._row(conn, who, raw_id, lock=True)
            sub_id = given.sub_id if given.sub_id is not None else current["sub_id"]
            if await conn.fetchval(q("sub_id_taken"), who.client_id, sub_id, current["id"]):
                raise Conflict(f"subID {sub_id!r} is already used in this workspace")
            row = await conn.fetchrow(
                q("update_sub_account"), current["id"], who.client_id,
                given.name if given.name is not None else current["name"], sub_id,
                given.metadata if given.metadata is not None else current["metadata"])
            out = sub_account_json(row)
            await audit.record(conn, who, "update", "sub_account", row["id"], sub_account_json(current), out)
        return out

    async def deactivate(self, who: Principal, raw_id: str) -> None:
        """Soft delete: history stays readable, new events are refused, sessions end now."""
        async with self.pool.acquire() as conn, conn.transaction():
            current = await self._row(conn, who, raw_id, lock=True)
            row = await conn.fetchrow(q("deactivate_sub_account"), current["id"], who.client_id)
            await conn.fetch(q("revoke_portal_sessions"), current["id"], who.client_id)
            await audit.record(conn, who, "deactivate", "sub_account", row["id"], sub_account_json(current),
                               sub_account_json(row))

    async def scope(self, who: Principal, raw_id: str, writing: bool) -> Principal:
        """`who` narrowed to the sub-account X-Sub-Account-ID names: 404 unless it is this
        workspace's; a write for a deactivated one is refused (409 SUB_ACCOUNT_INACTIVE)."""
        try:
            sub_account_id = uuid.UUID(raw_id)
        except ValueError as exc:
            raise NotFound("sub-account not found") from exc
        row = await self.pool.fetchrow(q("sub_account_state"), sub_account_id, who.client_id)
        if row is None:
            raise NotFound("sub-account not found")
        if writing and not row["active"]:
            raise inactive(row["sub_id"])
        return who.with_sub_account(sub_account_id)

    # -- portal sessions -------------------------------------------------------------------

    async def create_session(self, who: Principal, raw_id: str, body: Any, origin: str) -> dict[str, Any]:
        """A portal URL carrying a one-time exchange token (stored only as its SHA-256)."""
        given = parse_session(body)
        token = new_token(EXCHANGE_PREFIX)
        async with self.pool.acquire() as conn, conn.transaction():
            account = await self._row(conn, who, raw_id, lock=True)
            if account["deactivated_at"] is not None:
                raise SubAccountInactive(f"sub-account {account['sub_id']!r} is deactivated")
            row = await conn.fetchrow(q("insert_portal_session"), uuid.uuid4(), who.client_id, account["id"],
                                      digest(token), float(EXCHANGE_TTL_S), given.return_url, given.ttl_s)
            now = await conn.fetchval("SELECT now()")
            shown = session_json(row, now)
            await audit.record(conn, who, "create", "portal_session", row["id"], after=shown)
        return {"url": f"{origin.rstrip('/')}/s/exchange?token={token}", "session": shown}

    async def list_sessions(self, who: Principal, raw_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        account = await self._row(self.pool, who, raw_id)
        now = await self.pool.fetchval("SELECT now()")
        return await _page(self.pool, "list_portal_sessions", (account["id"], who.client_id), limit, cursor,
                           lambda r: session_json(r, now))

    async def revoke_session(self, who: Principal, raw_id: str, raw_session: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            account = await self._row(conn, who, raw_id)
            row = await conn.fetchrow(q("revoke_portal_session"), uuid_or_404(raw_session, "session"),
                                      account["id"], who.client_id)
            if row is None:
                raise NotFound("session not found")
            await audit.record(conn, who, "revoke", "portal_session", row["id"])

    async def revoke_sessions(self, who: Principal, raw_id: str) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            account = await self._row(conn, who, raw_id)
            rows = await conn.fetch(q("revoke_portal_sessions"), account["id"], who.client_id)
            await audit.record(conn, who, "revoke", "portal_session", None,
                               after={"subAccountId": str(account["id"]), "revoked": len(rows)})
        return len(rows)
