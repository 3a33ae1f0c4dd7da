"""The embedded portal's side of a session: exchange the one-time token, then authenticate each
request by the session token (`Authorization: Bearer mtp_...`), sliding its expiry forward.

No cache: every request reads (and slides) the session in one statement, so a revocation or a
deactivation takes effect on the very next request.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from control.errors import Unauthorized
from control.jsonfmt import iso
from control.policy.tokens import digest, new_token
from control.services import audit
from control.services.principal import Principal
from control.services.sub_accounts import SESSION_PREFIX
from control.settings import Settings
from control.store.queries import q

MAX_TOKEN = 200


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > MAX_TOKEN:
        return None
    return token.strip()


def portal_principal(row: asyncpg.Record, ip: str | None = None) -> Principal:
    """Acts in the workspace, limited to the session's sub-account. Its permission is the
    portal route's own; services see the sub-account and scope every read and write by it."""
    return Principal(row["client_id"], None, frozenset(), None, session_id=row["id"],
                     label=f"portal:{row['sub_id']}", ip=ip, sub_account_id=row["sub_account_id"])


def session_info(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "sessionId": str(row["id"]),
        "subAccount": {"id": str(row["sub_account_id"]), "name": row["sub_account_name"], "subID": row["sub_id"]},
        "returnURL": row["return_url"],
        "ttlSeconds": row["idle_seconds"],
        "expiresAt": iso(row["expires_at"]),
    }


class PortalAuthenticator:
    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        self.pool = pool

    async def exchange(self, raw: Any, ip: str | None) -> dict[str, Any]:
        """The one-time token for a session token: works once, before it expires, while the
        session is unrevoked and its sub-account active. Every failure is the same 401."""
        if not isinstance(raw, str) or not raw or len(raw) > MAX_TOKEN:
            raise Unauthorized("invalid or expired exchange token")
        token = new_token(SESSION_PREFIX)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("exchange_portal_token"), digest(raw), digest(token))
            if row is None:
                raise Unauthorized("invalid or expired exchange token")
            await audit.record(conn, portal_principal(row, ip), "exchange", "portal_session", row["id"])
        return {"token": token, **session_info(row)}

    async def authenticate(self, raw: str | None, ip: str | None) -> tuple[Principal, asyncpg.Record]:
        if raw is None:
            raise Unauthorized("missing or invalid portal session (Authorization: Bearer <session token>)")
        row = await self.pool.fetchrow(q("portal_session_by_hash"), digest(raw))
        if row is None:
            raise Unauthorized("portal session expired or revoked", code="SESSION_EXPIRED")
        return portal_principal(row, ip), row
