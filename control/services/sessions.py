"""Browser sessions: the `mittr_session` cookie, a random token whose SHA-256 is stored.

A session belongs to one workspace and acts as a member (with the member's current role) or, when
made from an API key (POST /auth/session), as that key (its scopes). Lookups are cached for about a
second per worker, so a logout, a revoked membership or a deleted key takes effect within a second
everywhere while a busy dashboard costs one query per second, not one per request.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from control.errors import Unauthorized
from control.policy.tokens import digest, new_token
from control.services.principal import Principal
from control.store.queries import q

COOKIE = "mittr_session"
CACHE_SECONDS = 1.0
TOUCH_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class NewSession:
    id: uuid.UUID
    token: str
    expires_at: datetime


async def create_session(conn: asyncpg.Connection | asyncpg.Pool, client_id: uuid.UUID, *,
                         user_id: uuid.UUID | None = None, key_id: uuid.UUID | None = None,
                         ip: str | None = None, user_agent: str | None = None,
                         ttl_s: float = 7 * 86400) -> NewSession:
    raw = new_token("mts_")
    row = await conn.fetchrow(q("insert_session"), uuid.uuid4(), digest(raw), user_id, client_id, key_id, ip,
                              (user_agent or "")[:300], float(ttl_s))
    return NewSession(row["id"], raw, row["expires_at"])


class SessionAuthenticator:
    def __init__(self, pool: asyncpg.Pool, ttl_s: float = 7 * 86400, cache_s: float = CACHE_SECONDS) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._cache_s = cache_s
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}
        self._touched: dict[uuid.UUID, float] = {}

    def forget(self, raw: str) -> None:
        self._cache.pop(digest(raw), None)

    async def authenticate(self, raw: str | None) -> Principal:
        if not raw or len(raw) > 200:
            raise Unauthorized("missing or invalid session")
        key = digest(raw)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            principal = hit[1]
        else:
            row = await self._pool.fetchrow(q("session_by_hash"), key)
            principal = self._principal(row) if row is not None else None
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (now + self._cache_s, principal)
            if principal is not None and principal.session_id is not None:
                await self._touch(principal.session_id, now)
        if principal is None:
            raise Unauthorized("missing or invalid session")
        return principal

    @staticmethod
    def _principal(row: asyncpg.Record) -> Principal | None:
        if row["key_id"] is not None:
            if not row["key_ok"]:
                return None
            return Principal(row["client_id"], row["key_id"], frozenset(row["scopes"] or ()), row["rate_limit"],
                             row["key_project_id"], session_id=row["id"], label=row["key_prefix"] or "")
        if row["user_id"] is None or row["role"] is None:
            return None                          # no longer a member of that workspace
        return Principal(row["client_id"], None, frozenset(), None, user_id=row["user_id"], role=row["role"],
                         session_id=row["id"], label=row["email"] or "")

    async def _touch(self, session_id: uuid.UUID, now: float) -> None:
        if now - self._touched.get(session_id, 0.0) < TOUCH_EVERY_S:
            return
        if len(self._touched) > 10000:
            self._touched.clear()
        self._touched[session_id] = now
        await self._pool.execute(q("touch_session"), session_id, float(self._ttl_s))
