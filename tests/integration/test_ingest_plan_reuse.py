"""Single ingest's statement is planned once per connection and its plan reused (migration 034).
Planned afresh on every call it cost about 130 µs of PostgreSQL CPU per event: the generic plan
assumed 100 deliveries per event and so always looked dearer than a plan for the actual arrays."""

from __future__ import annotations

import uuid

import asyncpg

from control.store.queries import q


async def test_insert_event_reuses_its_generic_plan(pool: asyncpg.Pool) -> None:
    client = uuid.uuid4()
    await pool.execute("INSERT INTO clients (id, name, signing_secret) VALUES ($1, 'plan', 'whsec_plan')", client)
    async with pool.acquire() as conn:
        stmt = await conn.prepare(q("insert_event"))
        for i in range(12):
            row = await stmt.fetchrow(uuid.uuid4(), client, None, f"k{i}", None, "https://r.example.com/h", b"{}",
                                      {}, 5, 0, 0, "queued", 1, [uuid.uuid4()], [None], [i], [5], None, None)
            assert row is not None and row["counted"] == i + 1
        plans = await conn.fetchrow("SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                                    " WHERE statement = $1", q("insert_event"))
    assert plans is not None
    # PostgreSQL tries five custom plans first; from then on the generic one must win.
    assert plans["custom_plans"] <= 5 and plans["generic_plans"] >= 7, dict(plans)
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE client_id = $1", client) == 12
