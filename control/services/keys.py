"""API keys: `mtr_` + random; only the SHA-256 is stored, the prefix is kept for display."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from control.crypto import SecretBox
from control.errors import Unauthorized
from control.policy.signing import generate_secret
from control.policy.tokens import digest, new_token
from control.services.principal import Principal
from control.store.queries import q

KEY_PREFIX = "mtr_"
AUTH_CACHE_SECONDS = 1.0     # a deleted or expired key answers 401 within a second on every worker


def new_raw_key() -> str:
    return new_token(KEY_PREFIX)


def key_hash(raw: str) -> bytes:
    return digest(raw)


@dataclass
class CreatedKey:
    id: uuid.UUID
    client_id: uuid.UUID
    name: str
    key: str
    key_prefix: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "clientId": str(self.client_id), "name": self.name,
                "keyPrefix": self.key_prefix, "key": self.key, "isActive": True,
                "createdAt": self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


async def create_client(conn: asyncpg.Connection | asyncpg.Pool, name: str,
                        box: SecretBox | None = None) -> dict[str, Any]:
    """A new tenant with its own secret for signing direct deliveries (sealed at rest when a
    SecretBox is given; the plaintext is returned once, here)."""
    secret = generate_secret()
    stored = box.seal(secret) if box is not None else secret
    row = await conn.fetchrow(q("insert_client"), uuid.uuid4(), name, stored)
    return {**dict(row), "signing_secret": secret}


async def create_key(conn: asyncpg.Connection | asyncpg.Pool, client_id: uuid.UUID, name: str,
                     scopes: list[str] | None = None, rate_limit: int | None = None,
                     expires_at: datetime | None = None,
                     project_id: uuid.UUID | None = None, created_by: uuid.UUID | None = None) -> CreatedKey:
    raw = new_raw_key()
    row = await conn.fetchrow(q("insert_api_key"), uuid.uuid4(), client_id, project_id, name,
                              raw[:8], key_hash(raw), scopes or [], rate_limit, expires_at, created_by)
    return CreatedKey(row["id"], client_id, name, raw, raw[:8], row["created_at"])


class KeyAuthenticator:
    """Resolves a raw key to a Principal, caching hits briefly so ingest is not one lookup per call.

    A revoked or deleted key stops working within AUTH_CACHE_SECONDS; an expiring one at its
    expiry, cached or not.
    """

    def __init__(self, pool: asyncpg.Pool, ttl: float = AUTH_CACHE_SECONDS) -> None:
        self._pool = pool
        self._ttl = ttl
        self._cache: dict[bytes, tuple[float, Principal | None, datetime | None]] = {}

    async def authenticate(self, raw: str | None) -> Principal:
        if not raw or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
            raise Unauthorized("missing or invalid API key")
        hashed = key_hash(raw)
        now = time.monotonic()
        hit = self._cache.get(hashed)
        if hit is not None and hit[0] > now:
            principal, expires = hit[1], hit[2]
        else:
            row = await self._pool.fetchrow(q("api_key_by_hash"), hashed)
            principal, expires = None, None
            if row is not None and row["is_active"]:
                expires = row["expires_at"]
                principal = Principal(row["client_id"], row["id"], frozenset(row["scopes"]),
                                      row["rate_limit"], row["project_id"], label=row["key_prefix"])
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[hashed] = (now + self._ttl, principal, expires)
        if principal is not None and expires is not None and expires <= datetime.now(UTC):
            principal = None
        if principal is None:
            raise Unauthorized("missing or invalid API key")
        return principal
