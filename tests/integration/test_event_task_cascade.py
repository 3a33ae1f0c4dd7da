"""Deleting events deletes their tasks, and deleting a workspace row its events (migrations 031 and
032: statement triggers in place of the foreign keys' ON DELETE CASCADE)."""

from __future__ import annotations

from typing import Any

from control.services.events import EventService
from control.services.keys import create_client
from control.services.principal import Principal


async def _workspace_with_events(pool: Any, name: str, n: int) -> tuple[Any, list[str]]:
    client = await create_client(pool, name)
    who = Principal(client["id"], None, frozenset(), None)
    svc = EventService(pool, 4096)
    ids = [(await svc.create(who, {"destination": f"https://{name}.example.com/x", "payload": {"i": i}},
                             f"{name}-{i}"))["id"] for i in range(n)]
    return client["id"], ids


async def test_deleting_events_deletes_their_tasks_and_no_others(pool: Any) -> None:
    _, ids = await _workspace_with_events(pool, "a", 6)
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 6
    await pool.execute("DELETE FROM events WHERE id = ANY($1::uuid[])", ids[:4])
    left = {str(r["event_id"]) for r in await pool.fetch("SELECT event_id FROM tasks")}
    assert left == set(ids[4:])


async def test_deleting_a_workspace_deletes_its_events_tasks(pool: Any) -> None:
    gone, _ = await _workspace_with_events(pool, "gone", 3)
    kept, kept_ids = await _workspace_with_events(pool, "kept", 2)
    await pool.execute("DELETE FROM clients WHERE id = $1", gone)
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE client_id = $1", gone) == 0
    assert {str(r["event_id"]) for r in await pool.fetch("SELECT event_id FROM tasks")} == set(kept_ids)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE client_id = $1", kept) == 2


async def test_the_ingest_path_checks_no_foreign_key(pool: Any) -> None:
    """What the migrations removed: the per-row checks on insert (the cascades above replace their delete)."""
    fks = await pool.fetch("SELECT conrelid::regclass::text AS t FROM pg_constraint "
                           "WHERE conrelid IN ('tasks'::regclass, 'events'::regclass) AND contype = 'f'")
    assert [r["t"] for r in fks] == []
