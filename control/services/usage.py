"""Monthly message quota: accepted events are counted per client and month, in the transaction
that stores them, so a refused request stores nothing and a stored one is always counted."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import asyncpg

from control.errors import QuotaExceeded
from control.store.queries import q

QUOTA_SQLSTATE = "MT402"   # raised by mittr_count_usage (migration 009)


@contextlib.contextmanager
def quota_checked() -> Iterator[None]:
    """Turn the database's quota refusal, raised inside whichever statement counted the events,
    into 402 QUOTA_EXCEEDED; that statement (and its transaction) stored nothing."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) == QUOTA_SQLSTATE:
            raise QuotaExceeded("monthly message quota exceeded; no events were accepted") from None
        raise


async def count_accepted(conn: asyncpg.Connection, client_id: uuid.UUID, events: int) -> None:
    """Add `events` to this month's count, or raise 402 QUOTA_EXCEEDED (the caller's transaction
    then rolls back). Call it last in the transaction: a quota'd client's count row stays locked
    until commit."""
    with quota_checked():
        await conn.execute(q("count_usage"), client_id, events)


async def used_this_month(conn: asyncpg.Connection | asyncpg.Pool, client_id: uuid.UUID) -> int:
    return int(await conn.fetchval(q("usage_this_month"), client_id))
