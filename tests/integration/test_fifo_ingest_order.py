"""FIFO order starts at ingest: the engine claims what is committed, in `seq` order, so for a FIFO
endpoint the order tasks become visible in must be their seq order. Two ingests racing (the later
one committing first) must not let the later task be claimed ahead of the earlier one."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from control.services.events import EventService
from control.services.keys import create_client
from control.services.principal import Principal
from control.store.queries import q
from tests.integration.test_leases_and_claims import _endpoint, _lease


async def _insert(conn: asyncpg.Connection, client_id: uuid.UUID, endpoint_id: uuid.UUID, key: str) -> None:
    """One typed event to the endpoint, by the ingest's own statement (on a connection the caller
    may hold in an open transaction, i.e. an ingest slow to commit)."""
    await conn.fetchrow(q("insert_event"), uuid.uuid4(), client_id, None, key, "a.b", None, b'{"k": 1}', {}, 5, 0,
                        0, "queued", 1, [uuid.uuid4()], [endpoint_id], [5], [5], None, None)


async def _blocked_or_done(pool: Any, later: asyncio.Task[Any], pid: int) -> str:
    """Wait until the later ingest either finished or waits on a lock (no timing involved)."""
    while True:
        if later.done():
            return "done"
        if await pool.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid):
            return "waiting"
        await asyncio.sleep(0.01)


async def test_a_later_fifo_ingest_committing_first_is_not_claimed_ahead(pool: Any) -> None:
    client = await create_client(pool, "t")
    fifo = await _endpoint(pool, client["id"], 5, fifo=True)
    epoch = await _lease(pool, "a")
    early = await pool.acquire()
    late = await pool.acquire()
    try:
        tx = early.transaction()
        await tx.start()
        await _insert(early, client["id"], fifo, "early")          # takes its seq, commits later
        pid = late.get_server_pid()
        later = asyncio.create_task(_insert(late, client["id"], fifo, "late"))
        state = await _blocked_or_done(pool, later, pid)
        claimed = await pool.fetch(q("claim_fifo_tasks"), "0-4096", epoch, 0, 4096, 100, [])
        assert state == "waiting" and claimed == [], \
            "the later event's task is not visible (so not claimable) before the earlier one's"
        await tx.commit()
        await later
    finally:
        await pool.release(early)
        await pool.release(late)
    rows = await pool.fetch(q("claim_fifo_tasks"), "0-4096", epoch, 0, 4096, 100, [])
    assert len(rows) == 2
    order = [await pool.fetchval("SELECT idempotency_key FROM events WHERE id = $1", r["event_id"])
             for r in sorted(rows, key=lambda r: r["seq"])]
    assert order == ["early", "late"]


async def test_non_fifo_ingests_do_not_wait_on_each_other(pool: Any) -> None:
    client = await create_client(pool, "t")
    plain = await _endpoint(pool, client["id"], 5)
    early = await pool.acquire()
    try:
        tx = early.transaction()
        await tx.start()
        await _insert(early, client["id"], plain, "early")
        # Would hang here if it waited on the first; the bound turns that into a failure.
        await asyncio.wait_for(_insert(pool, client["id"], plain, "late"), 10)
        assert await pool.fetchval("SELECT count(*) FROM events WHERE idempotency_key = 'late'") == 1
        await tx.rollback()
    finally:
        await pool.release(early)


async def test_an_event_to_several_fifo_endpoints_locks_them_in_one_order(pool: Any) -> None:
    client = await create_client(pool, "t")
    for _ in range(3):
        await _endpoint(pool, client["id"], 5, fifo=True)
    who = Principal(client["id"], None, frozenset(), None)
    svc = EventService(pool, 4096)
    await asyncio.gather(*[svc.create(who, {"eventType": "a.b", "payload": {"i": i}}, f"k{i}") for i in range(20)])
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 60
