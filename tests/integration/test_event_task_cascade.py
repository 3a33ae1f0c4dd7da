"""Deleting events deletes their tasks (migration 031: a statement trigger in place of the foreign
key's ON DELETE CASCADE), whichever way the events go: by id, or with their workspace."""

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


async def test_tasks_no_longer_carry_a_foreign_key_to_events(pool: Any) -> None:
    """What the migration removed: the per-row check on insert (the cascade above replaces its delete)."""
    fks = await pool.fetchval("SELECT count(*) FROM pg_constraint WHERE conrelid = 'tasks'::regclass "
                              "AND confrelid = 'events'::regclass AND contype = 'f'")
    assert fks == 0
