"""Lists filtered by status. No index holds `events.status` (migration 033): a common status is read
from the list index, a rare one first from the newest events and then through the tasks. Whichever
way a page is found, the answer must be the one a plain filter over all of the workspace's events
gives, page after page."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest

from control.services import events as event_service
from control.services.events import EVENT_STATUSES
from control.store.queries import q
from tests.integration.conftest import Caller

# The tasks of each event, in the states a delivery can leave them, and what the roll-up makes of them.
DIRECT = [("queued",), ("failed",), ("delivering",), ("delivered",), ("dead",)]
FANNED = [("delivered", "dead"), ("delivered", "failed"), ("delivering", "queued"), ("queued", "queued"),
          ("delivered", "delivered"), ("dead", "failed")]


async def make_scene(app: Caller, pool: asyncpg.Pool) -> list[uuid.UUID]:
    for name in ("a", "b"):
        status, ep, _ = await app.call("POST", "/api/v1/endpoints", {"url": f"https://{name}.example.com/h",
                                                                     "eventTypes": ["s.*"]})
        assert status == 201, ep
    made: list[uuid.UUID] = []
    plan = (DIRECT + FANNED) * 3
    for states in plan:
        body: dict[str, Any] = {"eventType": "s.x", "payload": {}} if len(states) == 2 else {
            "destination": "https://d.example.com/h", "payload": {}}
        status, ev, _ = await app.call("POST", "/api/v1/events", body, {"X-Idempotency-Key": str(uuid.uuid4())})
        assert status == 201, ev
        event_id = uuid.UUID(ev["id"])
        tasks = await pool.fetch("SELECT id FROM tasks WHERE event_id = $1 ORDER BY id", event_id)
        assert len(tasks) == len(states)
        for task, state in zip(tasks, states, strict=True):
            attempts = 0 if state == "queued" else 1
            await pool.execute("UPDATE tasks SET status = $2, attempts = $3 WHERE id = $1", task["id"], state, attempts)
        made.append(event_id)
    await pool.execute(q("rollup_events"), made)
    # The one change made without a roll-up: a claim given back (delivering -> failed). The event
    # still says `delivering`.
    given_back = await pool.fetchval(
        "UPDATE tasks SET status = 'failed' WHERE id = (SELECT t.id FROM tasks t JOIN events e ON e.id = t.event_id"
        " WHERE t.status = 'delivering' AND e.task_count = 1 LIMIT 1) RETURNING event_id")
    assert await pool.fetchval("SELECT status FROM events WHERE id = $1", given_back) == "delivering"
    return made


async def listed(app: Caller, status: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        code, page, _ = await app.call("GET", f"/api/v1/events?status={status}&limit={limit}"
                                              + (f"&cursor={cursor}" if cursor else ""))
        assert code == 200, page
        assert all(e["status"] == status for e in page["data"])
        seen += [e["id"] for e in page["data"]]
        if not page["pagination"]["hasMore"]:
            return seen
        cursor = page["pagination"]["cursor"]


@pytest.mark.parametrize(("window", "chunk", "chunks"), [(event_service.STATUS_WINDOW, event_service.TASK_CHUNK, 20),
                                                          (4, 1000, 20), (1, 3, 20), (1, 2, 1)])
async def test_every_status_lists_what_a_plain_filter_finds(app_client: Caller, pool: asyncpg.Pool,
                                                            monkeypatch: pytest.MonkeyPatch, window: int, chunk: int,
                                                            chunks: int) -> None:
    """window 4 and 1: pages found partly by the newest events and partly through the tasks; tasks
    read 3 or 2 at a time, and at most once per request in the last case, so that pages are cut
    short by the bound and go on from where the reading stopped."""
    monkeypatch.setattr(event_service, "STATUS_WINDOW", window)
    monkeypatch.setattr(event_service, "TASK_CHUNK", chunk)
    monkeypatch.setattr(event_service, "TASK_CHUNKS", chunks)
    await make_scene(app_client, pool)
    counts = {s: 0 for s in EVENT_STATUSES}
    for status in EVENT_STATUSES:
        want = [str(r["id"]) for r in await pool.fetch(
            "SELECT id FROM events WHERE client_id = $1 AND status = $2 ORDER BY created_at DESC, id DESC",
            uuid.UUID(app_client.client_id), status)]
        counts[status] = len(want)
        for limit in (1, 2, 5, 100):
            assert await listed(app_client, status, limit) == want, (status, limit)
    # Every status is there, so each way of finding them was taken.
    assert all(counts.values()), counts


async def test_an_event_in_a_rare_status_has_a_task_in_the_states_read(app_client: Caller,
                                                                       pool: asyncpg.Pool) -> None:
    """The invariant list_events_by_tasks rests on, checked over the scene's events."""
    await make_scene(app_client, pool)
    rows = await pool.fetch("SELECT e.status, array_agg(t.status) AS tasks FROM events e JOIN tasks t"
                            " ON t.event_id = e.id GROUP BY e.id, e.status")
    for r in rows:
        if r["status"] in event_service.TASKS_OF_STATUS:
            assert set(r["tasks"]) & set(event_service.TASKS_OF_STATUS[r["status"]]), dict(r)


async def test_rare_status_list_reads_tasks_not_events(app_client: Caller, pool: asyncpg.Pool) -> None:
    """With many delivered events and a few dead and failed ones, those are found through their
    tasks' indexes: the plan never scans the events' list."""
    client = uuid.UUID(app_client.client_id)
    await pool.execute(
        "WITH ev AS (INSERT INTO events (id, client_id, idempotency_key, payload, max_attempts, priority, status,"
        "                                task_count)"
        "            SELECT gen_random_uuid(), $1, 'k' || i, '{}', 3, 0,"
        "                   CASE WHEN i % 1000 = 0 THEN 'dead' WHEN i % 1000 = 1 THEN 'failed' ELSE 'delivered' END, 1"
        "            FROM generate_series(1, 20000) i RETURNING id, status)"
        " INSERT INTO tasks (id, event_id, client_id, partition, status, max_attempts, priority, next_attempt_at)"
        " SELECT gen_random_uuid(), ev.id, $1, 0, ev.status, 3, 0, now() FROM ev", client)
    await pool.execute("ANALYZE events; ANALYZE tasks")
    for status, index in (("dead", "tasks_client_dead"), ("failed", "tasks_client_open")):
        plan = "\n".join(r[0] for r in await pool.fetch(
            "EXPLAIN " + q("tasks_in_event_order"), client, list(event_service.TASKS_OF_STATUS[status]), None,
            None, event_service.TASK_CHUNK))
        assert index in plan, plan
        assert "Seq Scan" not in plan, plan
        assert len(await listed(app_client, status, 100)) == 20
        # Retrying by status finds its events through the tasks too.
        plan = "\n".join(r[0] for r in await pool.fetch("EXPLAIN " + q("retryable_events_by_status"), client, None,
                                                        status, 100))
        assert "tasks_client" in plan and "Seq Scan" not in plan, plan


async def test_a_page_reads_a_bounded_number_of_tasks_however_many_match(app_client: Caller,
                                                                         pool: asyncpg.Pool) -> None:
    """A workspace with 20,000 dead events: a page of them reads about a page of its dead tasks
    (the ordered index, stopped at the bound), not all 20,000."""
    client = uuid.UUID(app_client.client_id)
    await pool.execute(
        "WITH ev AS (INSERT INTO events (id, client_id, idempotency_key, payload, max_attempts, priority, status,"
        "                                task_count)"
        "            SELECT gen_random_uuid(), $1, 'd' || i, '{}', 3, 0, 'dead', 1 FROM generate_series(1, 20000) i"
        "            RETURNING id, status, created_at)"
        " INSERT INTO tasks (id, event_id, client_id, partition, status, max_attempts, priority, next_attempt_at,"
        "                    created_at)"
        " SELECT gen_random_uuid(), ev.id, $1, 0, ev.status, 3, 0, now(), ev.created_at FROM ev", client)
    await pool.execute("ANALYZE events; ANALYZE tasks")
    async with pool.acquire() as conn:
        for _ in range(7):      # past PostgreSQL's first custom plans, as a pooled connection would be
            rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                                    + q("tasks_in_event_order"), client, ["dead"], None, None, 21)
    plan = "\n".join(r[0] for r in rows)
    dead_scan = r"Index (?:Only )?Scan[^\n]*tasks_client_dead[^\n]*actual rows=([0-9.]+)"
    scanned = [int(float(m)) for m in re.findall(dead_scan, plan)]
    assert scanned and max(scanned) <= 21, plan
    code, first, _ = await app_client.call("GET", "/api/v1/events?status=dead&limit=5")
    assert code == 200 and len(first["data"]) == 5 and first["pagination"]["hasMore"]
