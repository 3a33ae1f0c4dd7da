"""The outcome writer when Postgres misbehaves: a COMMIT whose acknowledgement is lost, a batch with
an outcome the database refuses, a database that is gone for good. Real Postgres throughout; the
lost acknowledgement is a pool whose connection "drops" right after the transaction committed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from control.services.events import time_ordered_ids
from control.services.keys import create_client
from control.store.db import create_pool
from control.store.queries import q
from engine.model import Outcome, Task
from engine.writer import Flushed, OutcomeWriter

MAKE_TASKS = """
WITH ev AS (
    INSERT INTO events (id, client_id, idempotency_key, destination, payload, max_attempts, priority, status,
                        task_count)
    SELECT id, $1, id::text, 'https://sink.example.com/hook', '\\x7b7d'::bytea, 5, 5, 'queued', 1
    FROM unnest($2::uuid[]) AS id
)
INSERT INTO tasks (id, event_id, client_id, partition, status, max_attempts, priority, next_attempt_at,
                   claim_epoch)
SELECT t, e, $1, 7, 'delivering', 5, 5, now(), $4
FROM unnest($3::uuid[], $2::uuid[]) AS u(t, e)
"""


async def _claimed(pool: Any, n: int) -> tuple[int, list[Task]]:
    """`n` deliveries of `n` events, claimed by a fresh lease epoch, as the shard holds them."""
    client = await create_client(pool, "writer")
    epoch = int(await pool.fetchval("SELECT nextval('lease_epoch_seq')"))
    event_ids, task_ids = time_ordered_ids(n), time_ordered_ids(n)
    await pool.execute(MAKE_TASKS, client["id"], event_ids, task_ids, epoch)
    return epoch, [Task(id=t, event_id=e, client_id=client["id"], project_id=None, endpoint_id=None, partition=7,
                        seq=i, attempts=0, max_attempts=5, priority=5, due_ms=0,
                        destination="https://sink.example.com/hook", event_type=None, payload=b"{}", headers={},
                        client_secret="", target="sink")
                   for i, (t, e) in enumerate(zip(task_ids, event_ids, strict=True))]


def _outcome(task: Task, status: str = "delivered", keep: bool = False, body: str = "ok",
             overhead_us: int = 20) -> Outcome:
    """One finished attempt of `task`, counted the way the shard counts it."""
    prior = task.attempts
    task.attempts += 1
    now = datetime.now(UTC)
    ok = status == "delivered"
    return Outcome(
        task=task, attempt_id=time_ordered_ids(1)[0], attempt_number=prior + 1, status_code=200 if ok else 500,
        response_body=body, error="" if ok else "HTTP 500", error_category=None if ok else "5xx",
        outcome="success" if ok else "failure", duration_ms=12, overhead_us=overhead_us, attempted_at=now,
        new_status=status, next_attempt_at=now if ok else now + timedelta(seconds=30), keep_claim=keep,
        delivered_at=now if ok else None, attempts=prior + 1, prior_attempts=prior)


class LosesCommitAcks:
    """A pool whose next `lose` transactions commit but whose caller hears the connection drop, as
    when Postgres restarts or the network fails between the COMMIT and its acknowledgement."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.lose = 0

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            yield conn
        if self.lose:
            self.lose -= 1
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")


async def _task(pool: Any, task: Task) -> Any:
    return await pool.fetchrow("SELECT status, attempts, claim_epoch FROM tasks WHERE id = $1", task.id)


async def _rollups(pool: Any) -> Any:
    return await pool.fetchrow(
        "SELECT coalesce(sum(attempts), 0) AS attempts, coalesce(sum(delivered), 0) AS delivered,"
        " coalesce(sum(dead), 0) AS dead, coalesce(sum(failures), 0) AS failures FROM delivery_rollups")


async def test_a_batch_retried_after_a_lost_commit_ack_is_applied_once(pool: Any) -> None:
    epoch, (t1, t2, t3) = await _claimed(pool, 3)
    flaky = LosesCommitAcks(pool)
    writer = OutcomeWriter(flaky, lambda: epoch, 500, 5)
    first = [_outcome(t1, "failed", keep=True), _outcome(t2, "delivered"), _outcome(t3, "dead")]
    for o in first:
        writer.add(o)

    flaky.lose = 1
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        await writer.flush_once()
    assert writer.backlog == 3, "the writer cannot know it committed: it keeps the batch"
    assert await pool.fetchval("SELECT count(*) FROM delivery_attempts") == 3, "but it did commit"

    # Before the retry: t1's next attempt finished, and t3 (dead) was replayed, then claimed again
    # by this shard (same epoch) with its reset attempt count.
    later = _outcome(t1, "delivered")
    writer.add(later)
    client_id = t3.client_id
    assert await pool.fetch(q("requeue_tasks"), [t3.event_id], client_id, None, None)
    await pool.execute("UPDATE tasks SET claim_epoch = $1 WHERE id = $2", epoch, t3.id)

    assert await writer.flush_once() == Flushed(recorded=4), "the retry does not raise"
    assert writer.backlog == 0
    ids = [r["id"] for r in await pool.fetch("SELECT id FROM delivery_attempts")]
    assert sorted(ids) == sorted(o.attempt_id for o in [*first, later]), "each attempt recorded once"
    assert dict(await _rollups(pool)) == {"attempts": 4, "delivered": 2, "dead": 1, "failures": 2}, \
        "analytics count the retried batch once"
    assert dict(await _task(pool, t1)) == {"status": "delivered", "attempts": 2, "claim_epoch": None}
    assert dict(await _task(pool, t2)) == {"status": "delivered", "attempts": 1, "claim_epoch": None}
    assert dict(await _task(pool, t3)) == {"status": "queued", "attempts": 0, "claim_epoch": epoch}, \
        "the replay stands: the stale outcome is not applied again"
    assert await pool.fetchval("SELECT attempts FROM events WHERE id = $1", t1.event_id) == 2

    # And the writer goes on with the deliveries that follow.
    t3.attempts = 0        # the copy claimed again after the replay
    writer.add(_outcome(t3, "delivered"))
    assert await writer.flush_once() == Flushed(recorded=1)
    assert dict(await _task(pool, t3)) == {"status": "delivered", "attempts": 1, "claim_epoch": None}
    assert await pool.fetchval("SELECT count(*) FROM delivery_attempts") == 5
    assert (await _rollups(pool))["attempts"] == 5


async def test_a_lost_ack_between_two_outcomes_of_one_task(pool: Any) -> None:
    """The first write held attempt 1; the retry holds attempts 1 and 2 of the same task: only the
    second is new, and it is applied (the task's count moved on to what it expects)."""
    epoch, (task,) = await _claimed(pool, 1)
    flaky = LosesCommitAcks(pool)
    writer = OutcomeWriter(flaky, lambda: epoch, 500, 5)
    writer.add(_outcome(task, "failed", keep=True))
    flaky.lose = 1
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        await writer.flush_once()
    writer.add(_outcome(task, "failed", keep=True))
    writer.add(_outcome(task, "delivered"))
    assert await writer.flush_once() == Flushed(recorded=3)
    assert dict(await _task(pool, task)) == {"status": "delivered", "attempts": 3, "claim_epoch": None}
    assert await pool.fetchval("SELECT count(*) FROM delivery_attempts") == 3
    assert dict(await _rollups(pool)) == {"attempts": 3, "delivered": 1, "dead": 0, "failures": 2}


async def test_an_outcome_overtaken_by_a_replay_is_not_applied(pool: Any) -> None:
    """Attempt 2 waits in the writer while the task (failed after attempt 1) is replayed and claimed
    again by this shard: the replay's reset count fences the stale outcome out."""
    epoch, (task,) = await _claimed(pool, 1)
    writer = OutcomeWriter(pool, lambda: epoch, 500, 5)
    writer.add(_outcome(task, "failed", keep=True))
    await writer.flush_once()
    writer.add(_outcome(task, "dead"))                       # attempt 2, decided on a count of 1
    assert await pool.fetch(q("requeue_tasks"), [task.event_id], task.client_id, None, None)
    await pool.execute("UPDATE tasks SET claim_epoch = $1 WHERE id = $2", epoch, task.id)
    assert await writer.flush_once() == Flushed(recorded=1)
    assert dict(await _task(pool, task)) == {"status": "queued", "attempts": 0, "claim_epoch": epoch}


async def test_a_poison_outcome_is_isolated_and_its_batch_mates_recorded(
        pool: Any, caplog: pytest.LogCaptureFixture) -> None:
    epoch, tasks = await _claimed(pool, 8)
    dropped: list[Outcome] = []
    writer = OutcomeWriter(pool, lambda: epoch, 500, 5, on_dropped=dropped.append)
    secret_body = "leaked-response-body-\ud800"       # a lone surrogate: cannot be encoded as UTF-8
    outcomes = [_outcome(t, body=secret_body if i == 2 else "ok", overhead_us=2**31 if i == 5 else 20)
                for i, t in enumerate(tasks)]
    for o in outcomes:
        writer.add(o)
    with caplog.at_level(logging.DEBUG, logger="mittr.engine.writer"):
        assert await writer.flush_once() == Flushed(recorded=6, dropped=2)
    assert writer.backlog == 0 and writer.dropped_total == 2
    poison = {tasks[2].id, tasks[5].id}
    assert {o.task.id for o in dropped} == poison
    recorded = {r["task_id"] for r in await pool.fetch("SELECT task_id FROM delivery_attempts")}
    assert recorded == {t.id for t in tasks} - poison, "the rest of the batch is recorded"
    assert (await _rollups(pool))["attempts"] == 6
    for t in tasks:
        row = dict(await _task(pool, t))
        if t.id in poison:
            assert row == {"status": "delivering", "attempts": 0, "claim_epoch": epoch}, "still claimed"
        else:
            assert row["status"] == "delivered"
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "dropped" in logged and str(tasks[2].id) in logged
    assert "leaked-response-body" not in logged, "no payload or response body in the log"

    # The shard's orphan sweep gives the dropped deliveries back to the queue: retried, not lost.
    await pool.execute(q("release_orphans"), 0, 4096, epoch, [])
    for t in tasks[2], tasks[5]:
        assert dict(await _task(pool, t)) == {"status": "queued", "attempts": 0, "claim_epoch": None}


async def test_a_writer_failing_for_longer_than_allowed_reports_itself_stuck(db_url: str, pg_admin_url: str) -> None:
    own = await create_pool(db_url, 1, 2)
    try:
        epoch, tasks = await _claimed(own, 2)
        stuck = asyncio.Event()
        calls: list[float] = []

        def on_stuck() -> None:
            calls.append(asyncio.get_running_loop().time())
            stuck.set()

        writer = OutcomeWriter(own, lambda: epoch, 500, 5, on_stuck=on_stuck, stuck_after_s=0.5, stuck_failures=3)
        for t in tasks:
            writer.add(_outcome(t))
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'DROP DATABASE "{urlsplit(db_url).path.lstrip("/")}" WITH (FORCE)')
        finally:
            await admin.close()
        runner = asyncio.create_task(writer.run())
        try:
            await asyncio.wait_for(stuck.wait(), 60)
            assert writer.wedged and writer.watch.streak >= 3
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while writer.watch.streak < 6 and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert writer.watch.streak >= 6
            assert len(calls) == 1, "called once, not on every failure"
            assert writer.backlog == 2, "nothing is dropped for a transient failure"
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    finally:
        own.terminate()


async def test_a_short_outage_is_not_a_wedge(pool: Any) -> None:
    """A few lost acknowledgements in a row, then Postgres answers: recorded, and nobody told to quit."""
    epoch, tasks = await _claimed(pool, 4)
    flaky = LosesCommitAcks(pool)
    calls: list[int] = []
    writer = OutcomeWriter(flaky, lambda: epoch, 2, 1, on_stuck=lambda: calls.append(1),
                           stuck_after_s=30, stuck_failures=3)
    for t in tasks:
        writer.add(_outcome(t))
    flaky.lose = 4
    runner = asyncio.create_task(writer.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while writer.backlog and loop.time() < deadline:
            await asyncio.sleep(0.02)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert writer.backlog == 0 and calls == [] and not writer.wedged
    assert await pool.fetchval("SELECT count(*) FROM delivery_attempts") == 4
    assert (await _rollups(pool))["attempts"] == 4
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'delivered'") == 4
