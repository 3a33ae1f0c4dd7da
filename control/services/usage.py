"""Monthly message quota: accepted events are counted per client and month, in the transaction
that stores them, so a refused request stores nothing and a stored one is always counted."""

from __future__ import annotations

import uuid

import asyncpg

from control.errors import QuotaExceeded
from control.store.queries import q


async def count_accepted(conn: asyncpg.Connection, client_id: uuid.UUID, events: int) -> None:
    """Add `events` to this month's count, or raise 402 QUOTA_EXCEEDED (the caller's transaction
    then rolls back). Call it last in the transaction: a quota'd client's count row stays locked
    until commit."""
    if await conn.fetchval(q("count_usage"), client_id, events) is None:
        raise QuotaExceeded("monthly message quota exceeded; no events were accepted")


async def used_this_month(conn: asyncpg.Connection | asyncpg.Pool, client_id: uuid.UUID) -> int:
    return int(await conn.fetchval(q("usage_this_month"), client_id))
