"""The engine's SQL on a real database: leases, epoch fencing, claims, take-over after a crash."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from control.services.events import EventService
from control.services.keys import create_client
from control.services.principal import Principal
from control.store.db import create_pool
from control.store.queries import q
from engine.lease import Lease


async def _events(pool: Any, n: int, **extra: Any) -> list[str]:
    client = await create_client(pool, "t")
    who = Principal(client["id"], None, frozenset(), None)
    svc = EventService(pool, 4096)
    ids = []
    for i in range(n):
        ev = await svc.create(who, {"destination": f"https://h{i % 3}.example.com/x", "payload": {"i": i},
                                    **extra}, f"k{i}")
        ids.append(ev["id"])
    return ids


async def _claim(pool: Any, epoch: int | None, lo: int, hi: int, horizon: float, limit: int,
                 full_endpoints: list[uuid.UUID] | None = None, full_partitions: list[int] | None = None) -> list[Any]:
    return list(await pool.fetch(q("claim_tasks"), "0-4096", epoch, lo, hi, horizon, limit, full_endpoints or [],
                                 full_partitions or []))


async def _lease(pool: Any, owner: str, ttl: float = 30) -> int | None:
    return await pool.fetchval(q("acquire_lease"), "0-4096", 0, 4096, owner, ttl)


async def test_lease_is_exclusive_until_it_expires(pool: Any) -> None:
    first = await _lease(pool, "host-a:1")
    assert first is not None
    assert await _lease(pool, "host-b:1") is None, "a live lease is not taken"
    again = await _lease(pool, "host-a:1")
    assert again is not None and again > first, "the same owner (a restarted shard) re-takes with a new epoch"
    await pool.execute("UPDATE shard_leases SET expires_at = now() - interval '1 second'")
    taken = await _lease(pool, "host-b:1")
    assert taken is not None and taken > again
    assert await pool.fetchval(q("renew_lease"), "0-4096", again, 30.0) is None, "the old epoch cannot renew"


LEASES_LOCK = "SELECT pg_advisory_xact_lock(hashtext('mittr_leases'))"


async def test_taking_a_lease_does_not_wait_behind_a_member_cut_off_mid_acquire(pool: Any, db_url: str) -> None:
    """A member cut off from the database while inside its lease transaction holds the leases lock
    until PostgreSQL ends that transaction; the others keep polling (and can stop) meanwhile, and
    take the range as soon as it is freed, instead of blocking in the statement behind it."""
    holder = await asyncpg.connect(db_url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(LEASES_LOCK)
        lease = Lease(pool, 0, 4096, "host-b:1", ttl_s=30, renew_s=10)
        polls = 0

        def stopping() -> bool:
            nonlocal polls
            polls += 1
            return polls > 3
        assert await asyncio.wait_for(lease.acquire(stopping), 10) is False, "not taken while the lock is held"
        assert polls > 3, "it polled instead of waiting in the statement"
        await tx.rollback()
        assert await asyncio.wait_for(lease.acquire(), 10) is True
        assert await pool.fetchval("SELECT owner FROM shard_leases WHERE slot = '0-4096'") == "host-b:1"
    finally:
        await holder.close()


async def test_a_transaction_left_idle_is_ended_and_its_locks_freed(db_url: str) -> None:
    """Pools made with an idle-in-transaction bound: a transaction that stops sending statements
    (its process frozen, or cut off) is ended by the server, and the locks it held are free again."""
    bounded = await create_pool(db_url, 1, 1, idle_in_transaction_s=1)
    other = await asyncpg.connect(db_url)
    try:
        async with bounded.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute(LEASES_LOCK)
            assert await other.fetchval("SELECT pg_try_advisory_lock(hashtext('mittr_leases'))") is False
            await asyncio.sleep(2.5)
            assert await other.fetchval("SELECT pg_try_advisory_lock(hashtext('mittr_leases'))") is True, \
                "the server ended the idle transaction and freed its lock"
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await conn.execute("SELECT 1")
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await tx.rollback()
        assert await bounded.fetchval("SELECT 1") == 1, "the pool replaces the ended connection"
    finally:
        await other.close()
        await bounded.close()


async def test_claim_marks_due_work_and_fences_old_epochs(pool: Any) -> None:
    await _events(pool, 5)
    epoch = await _lease(pool, "a")
    rows = await _claim(pool, epoch, 0, 4096, 300.0, 100)
    assert len(rows) == 5 and all(r["payload"] for r in rows)
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'queued' AND claim_epoch = $1",
                               epoch) == 5, "claimed, not yet in flight: the status stays honest"
    assert await _claim(pool, epoch, 0, 4096, 300.0, 100) == [], "claimed once"

    # The shard dies; a new owner takes over and resets what the old epoch held.
    await pool.execute("UPDATE shard_leases SET expires_at = now() - interval '1 second'")
    new_epoch = await _lease(pool, "b")
    await pool.execute(q("reset_stale_claims"), 0, 4096, new_epoch)
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'queued' AND claim_epoch IS NULL") == 5

    # The old owner, a zombie, tries to record outcomes: nothing changes.
    ids = [r["id"] for r in rows]
    now = datetime.now(UTC)
    zombie = await pool.fetch(q("record_outcomes"), ids, ["delivered"] * 5, [1] * 5, [now] * 5, [None] * 5,
                              [None] * 5, [now] * 5, epoch, [0] * 5)
    assert zombie == []
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'delivered'") == 0

    reclaimed = await _claim(pool, new_epoch, 0, 4096, 300.0, 100)
    assert {r["id"] for r in reclaimed} == set(ids)
    done = await pool.fetch(q("record_outcomes"), ids, ["delivered"] * 5, [1] * 5, [now] * 5, [None] * 5,
                            [None] * 5, [now] * 5, new_epoch, [0] * 5)
    assert len(done) == 5
    await pool.execute(q("rollup_events"), [r["event_id"] for r in done])
    assert await pool.fetchval("SELECT count(*) FROM events WHERE status = 'delivered' AND attempts = 1") == 5


async def test_claim_respects_range_priority_and_horizon(pool: Any) -> None:
    await _events(pool, 3, priority=9)
    await _events_for_priority(pool)
    epoch = await _lease(pool, "a")
    rows = await _claim(pool, epoch, 0, 4096, 0.0, 2)
    assert [r["priority"] for r in rows] == [1, 9], "highest priority first, delayed work left alone"
    # A shard only sees its own partitions.
    await pool.execute("UPDATE tasks SET claim_epoch = NULL, status = 'queued'")
    part = await pool.fetchval("SELECT min(partition) FROM tasks")
    rows = await _claim(pool, epoch, part, part + 1, 0.0, 100)
    assert rows and all(r["partition"] == part for r in rows)


async def _events_for_priority(pool: Any) -> None:
    client = await create_client(pool, "p")
    who = Principal(client["id"], None, frozenset(), None)
    svc = EventService(pool, 4096)
    await svc.create(who, {"destination": "https://p.example.com/x", "payload": {}, "priority": 1}, "hi")
    await svc.create(who, {"destination": "https://p.example.com/x", "payload": {}, "priority": 1,
                           "delaySeconds": 600}, "later")


async def test_paused_endpoint_work_is_not_claimed(pool: Any) -> None:
    client = await create_client(pool, "t")
    ep_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO endpoints (id, client_id, url, event_types, signing_secret, partition, status)"
        " VALUES ($1, $2, 'https://e.example.com', '{a.*}', 'secretsecret', 7, 'paused')", ep_id, client["id"])
    svc = EventService(pool, 4096)
    await svc.create(Principal(client["id"], None, frozenset(), None), {"eventType": "a.b", "payload": {}}, "k")
    epoch = await _lease(pool, "a")
    assert await _claim(pool, epoch, 0, 4096, 300.0, 100) == []
    await pool.execute("UPDATE endpoints SET status = 'active'")
    assert len(await _claim(pool, epoch, 0, 4096, 300.0, 100)) == 1


async def _endpoint(pool: Any, client_id: uuid.UUID, partition: int, **cols: Any) -> uuid.UUID:
    ep_id = uuid.uuid4()
    names = "".join(f", {k}" for k in cols)
    values = "".join(f", ${i + 5}" for i in range(len(cols)))
    await pool.execute(
        f"INSERT INTO endpoints (id, client_id, url, event_types, signing_secret, partition{names})"
        f" VALUES ($1, $2, $3, $4, 'secretsecret', {partition}{values})",
        ep_id, client_id, f"https://{ep_id.hex}.example.com", ["a.*"], *cols.values())
    return ep_id


async def test_claim_skips_targets_at_their_cap(pool: Any) -> None:
    client = await create_client(pool, "t")
    who = Principal(client["id"], None, frozenset(), None)
    full = await _endpoint(pool, client["id"], 7)
    fresh = await _endpoint(pool, client["id"], 8)
    svc = EventService(pool, 4096)
    for i in range(3):
        await svc.create(who, {"eventType": "a.b", "payload": {"i": i}}, f"k{i}")   # one task per endpoint
    direct = await svc.create(who, {"destination": "https://d.example.com/x", "payload": {}}, "d")
    direct_part = await pool.fetchval("SELECT partition FROM tasks WHERE event_id = $1", uuid.UUID(direct["id"]))
    epoch = await _lease(pool, "a")
    rows = await _claim(pool, epoch, 0, 4096, 300.0, 100, [full], [direct_part])
    assert {r["endpoint_id"] for r in rows} == {fresh}, "the full endpoint and the full destination wait"
    rest = await _claim(pool, epoch, 0, 4096, 300.0, 100)
    assert len(rest) == 4 and {r["endpoint_id"] for r in rest} == {full, None}


async def test_deleted_endpoints_work_is_claimed_and_buried_with_a_reason(pool: Any) -> None:
    client = await create_client(pool, "t")
    who = Principal(client["id"], None, frozenset(), None)
    ep = await _endpoint(pool, client["id"], 7)
    fifo = await _endpoint(pool, client["id"], 9, fifo=True)
    svc = EventService(pool, 4096)
    ev = await svc.create(who, {"eventType": "a.b", "payload": {}}, "k")
    # The DELETE commits while the ingest's tasks already exist (the race): nothing may hold them forever.
    await pool.execute("UPDATE endpoints SET deleted_at = now()")
    epoch = await _lease(pool, "a")
    fifo_rows = await pool.fetch(q("claim_fifo_tasks"), "0-4096", epoch, 0, 4096, 100, [])
    rows = await _claim(pool, epoch, 0, 4096, 300.0, 100)
    assert {r["endpoint_id"] for r in [*rows, *fifo_rows]} == {ep, fifo}
    ids = [r["id"] for r in [*rows, *fifo_rows]]
    assert len(await pool.fetch(q("bury_tasks"), ids, epoch + 1, "endpoint deleted")) == 0, "fenced by epoch"
    buried = await pool.fetch(q("bury_tasks"), ids, epoch, "endpoint deleted")
    await pool.execute(q("rollup_events"), [r["event_id"] for r in buried])
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'dead' AND last_error = 'endpoint deleted'"
                               " AND claim_epoch IS NULL") == 2
    assert await pool.fetchval("SELECT status FROM events WHERE id = $1", uuid.UUID(ev["id"])) == "dead"


async def test_mark_delivering_is_fenced_by_epoch_and_attempt_count(pool: Any) -> None:
    ids = [uuid.UUID(i) for i in await _events(pool, 2)]
    epoch = await _lease(pool, "a")
    rows = await _claim(pool, epoch, 0, 4096, 300.0, 100)
    task_ids = [r["id"] for r in rows]
    assert await pool.fetch(q("mark_delivering"), task_ids, [0, 0], (epoch or 0) + 1) == []
    assert await pool.fetch(q("mark_delivering"), task_ids, [1, 0], epoch) != []
    # Only the one whose attempt count matched: the other's outcome was (as far as we know) recorded.
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'delivering'") == 1
    await pool.execute(q("rollup_events"), ids)
    assert sorted(await pool.fetchval("SELECT array_agg(status) FROM events")) == ["delivering", "queued"]


async def test_migrations_are_idempotent(pool: Any) -> None:
    from control.store.db import migrate

    async with pool.acquire() as conn:
        assert await migrate(conn) == []
    count = await pool.fetchval("SELECT count(*) FROM schema_migrations")
    assert count >= 1


async def test_spreading_moves_a_hot_endpoints_due_work_but_never_a_fifo_endpoints(pool: Any) -> None:
    client = await create_client(pool, "t")
    who = Principal(client["id"], None, frozenset(), None)
    hot = await _endpoint(pool, client["id"], 7)
    svc = EventService(pool, 4096)
    for i in range(4):
        await svc.create(who, {"eventType": "a.b", "payload": {"i": i}}, f"k{i}")
    epoch = await _lease(pool, "a")
    moved = await pool.fetch(q("spread_tasks"), "0-4096", epoch, 7, hot, 300.0, [9, 10])
    assert sorted(r["partition"] for r in moved) == [9, 10]
    # Made FIFO since the shard read its config: nothing of it moves any more.
    await pool.execute("UPDATE endpoints SET fifo = true WHERE id = $1", hot)
    assert await pool.fetch(q("spread_tasks"), "0-4096", epoch, 7, hot, 300.0, [9, 10]) == []
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE partition = 7") == 2
    # A stale epoch moves nothing either.
    await pool.execute("UPDATE endpoints SET fifo = false WHERE id = $1", hot)
    assert await pool.fetch(q("spread_tasks"), "0-4096", epoch - 1, 7, hot, 300.0, [9]) == []
