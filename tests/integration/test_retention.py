"""Retention: old finished events (with tasks), attempt day partitions and rollups go; open work, recent
data and everything under 0 days stay; dry runs count without changing; one run per cluster at a time."""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from control.services import rollups
from control.services.keys import create_client
from control.services.retention import (
    RETENTION_LOCK,
    PruneReport,
    RetentionPolicy,
    prune,
    prune_on_schedule,
    uuid_floor,
)
from control.services.rollups import AttemptFact, aggregate
from control.store.queries import q
from tests.integration.conftest import Caller
from tests.support.pg import with_database

POLICY = RetentionPolicy(events_days=30, attempts_days=30, rollups_days=400, interval_s=3600)
OLD_ATTEMPTS = "SELECT count(*) FROM delivery_attempts WHERE attempted_at < now() - interval '30 days'"


def v7_at(ts: datetime) -> uuid.UUID:
    """A UUIDv7 as time_ordered_ids makes it, but for a moment in the past."""
    return uuid.UUID(int=uuid_floor(ts).int | (0x7 << 76) | (random.getrandbits(12) << 64) | (0x2 << 62)
                     | random.getrandbits(62))


def rolled_up(statuses: list[str]) -> str:
    """The event status the writer's roll-up gives these task states."""
    if all(s == "delivered" for s in statuses):
        return "delivered"
    for s in ("delivering", "failed", "queued"):
        if s in statuses:
            return s
    return "dead"


async def event(conn: Any, client: uuid.UUID, ago: timedelta, tasks: list[str], *,
                status: str | None = None, poll: bool = False) -> uuid.UUID:
    """An event created `ago`, with one task per state in `tasks` and an attempt for each task that
    was tried; `status` overrides the rolled-up event status."""
    at = datetime.now(UTC) - ago
    eid = v7_at(at)
    await conn.execute(
        "INSERT INTO events (id, client_id, idempotency_key, destination, payload, max_attempts, priority,"
        " status, task_count, created_at, updated_at) VALUES ($1, $2, $3, 'https://r.example.com/x', '{}',"
        " 5, 5, $4, $5, $6, $6)", eid, client, f"k-{eid}", status or rolled_up(tasks), len(tasks), at)
    for state in tasks:
        tid = v7_at(at)
        tried = state != "queued"
        await conn.execute(
            "INSERT INTO tasks (id, event_id, client_id, partition, status, attempts, max_attempts, priority,"
            " next_attempt_at, created_at, poll_taken_at, poll_visible_at)"
            " VALUES ($1, $2, $3, 0, $4, $5, 5, 5, $6, $6, $7, $8)",
            tid, eid, client, state, int(tried), at + timedelta(days=60) if state == "failed" else at,
            at if poll else None, at + timedelta(seconds=30) if poll else None)
        if tried:
            await attempt(conn, client, at + timedelta(seconds=1), eid, tid)
    return eid


async def attempt(conn: Any, client: uuid.UUID, at: datetime, event_id: uuid.UUID | None = None,
                  task_id: uuid.UUID | None = None) -> uuid.UUID:
    aid = v7_at(at)
    await conn.execute(
        "INSERT INTO delivery_attempts (id, task_id, event_id, client_id, attempt_number, status_code, outcome,"
        " duration_ms, processing_overhead_us, attempted_at) VALUES ($1, $2, $3, $4, 1, 200, 'success', 5, 10, $5)",
        aid, task_id or uuid.uuid4(), event_id or uuid.uuid4(), client, at)
    return aid


async def old_partitions(conn: Any, days_ago: int, days: int) -> None:
    await conn.execute("SELECT mittr_ensure_attempt_partitions((now() - make_interval(days => $1))::date, $2)",
                       days_ago, days)


async def partitions(conn: Any) -> set[str]:
    rows = await conn.fetch("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                            " WHERE i.inhparent = 'delivery_attempts'::regclass")
    return {r["relname"] for r in rows}


async def rollup(conn: Any, client: uuid.UUID, at: datetime, endpoint: uuid.UUID | None = None) -> None:
    async with conn.transaction():
        await rollups.apply(conn, aggregate([AttemptFact(client, None, endpoint, at, "success", None, 7,
                                                         "delivered")]))


async def count(conn: Any, sql: str, *args: Any) -> int:
    return int(await conn.fetchval(sql, *args))


async def snapshot(conn: Any) -> dict[str, int]:
    return {t: await count(conn, f"SELECT count(*) FROM {t}")
            for t in ("events", "tasks", "delivery_attempts", "delivery_rollups")}


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> Any:
    async with pool.acquire() as c:
        yield c


@pytest.fixture
async def client(conn: Any) -> uuid.UUID:
    return uuid.UUID(str((await create_client(conn, "retention"))["id"]))


@pytest.fixture
async def scene(conn: Any, client: uuid.UUID) -> dict[str, Any]:
    """Old and recent data of every kind, with what a 30/30/400-day policy must remove and keep."""
    old = timedelta(days=60)
    await old_partitions(conn, 61, 3)
    gone = {
        "delivered": await event(conn, client, old, ["delivered"]),
        "dead": await event(conn, client, old, ["dead"]),
        "fanout": await event(conn, client, old, ["delivered", "dead", "delivered"]),
        "nothing to deliver": await event(conn, client, old, []),
    }
    kept = {
        "queued": await event(conn, client, old, ["queued"]),
        "in flight": await event(conn, client, old, ["delivering"]),
        "retry scheduled": await event(conn, client, old, ["failed"]),
        "one delivery open": await event(conn, client, old, ["delivered", "failed"]),
        "poll not acked": await event(conn, client, old, ["queued"], poll=True),
        "re-queued, not yet rolled up": await event(conn, client, old, ["dead", "queued"], status="dead"),
        "recent": await event(conn, client, timedelta(days=29), ["delivered"]),
        "today": await event(conn, client, timedelta(minutes=5), ["dead"]),
    }
    default_old = await attempt(conn, client, datetime.now(UTC) - timedelta(days=200))    # no partition: default
    default_future = await attempt(conn, client, datetime.now(UTC) + timedelta(days=40))  # likewise
    now = datetime.now(UTC)
    for minutes_ago in (500 * 1440, 401 * 1440, 401 * 1440 + 1):
        await rollup(conn, client, now - timedelta(minutes=minutes_ago))
    await rollup(conn, client, now - timedelta(days=401), uuid.uuid4())
    await rollup(conn, client, now - timedelta(days=399))
    await rollup(conn, client, now)
    doomed = [r["name"] for r in await conn.fetch(q("retention_attempt_partitions"), now - timedelta(days=30))]
    assert len(doomed) >= 3
    return {"gone": gone, "kept": kept, "default_old": default_old, "default_future": default_future,
            "doomed_partitions": doomed, "old_rollups": 4, "gone_tasks": 5}


async def test_old_finished_events_go_with_tasks_attempts_and_rollups(conn: Any, scene: dict[str, Any]) -> None:
    before = await partitions(conn)
    report = await prune(conn, POLICY)
    assert report.skipped is None
    assert (report.events, report.tasks) == (len(scene["gone"]), scene["gone_tasks"])
    gone, kept = list(scene["gone"].values()), list(scene["kept"].values())
    assert await count(conn, "SELECT count(*) FROM events WHERE id = ANY($1)", gone) == 0
    assert await count(conn, "SELECT count(*) FROM tasks WHERE event_id = ANY($1)", gone) == 0
    left = {r["id"] for r in await conn.fetch("SELECT id FROM events")}
    assert left == set(kept), {k for k, v in scene["kept"].items() if v not in left}
    # every kept event keeps its tasks
    assert await count(conn, "SELECT count(*) FROM tasks") == 10
    # old day partitions dropped (their attempts with them), recent ones and the default partition stay
    assert report.partitions == scene["doomed_partitions"]
    assert await partitions(conn) == before - set(scene["doomed_partitions"])
    assert "delivery_attempts_default" in await partitions(conn)
    assert await count(conn, OLD_ATTEMPTS) == 0
    assert report.default_attempts == 1 and report.partition_rows is None
    assert await count(conn, "SELECT count(*) FROM delivery_attempts WHERE id = $1", scene["default_future"]) == 1
    # attempts of the recent events stay
    recent = [scene["kept"]["recent"], scene["kept"]["today"]]
    assert await count(conn, "SELECT count(*) FROM delivery_attempts WHERE event_id = ANY($1)", recent) == 2
    # rollups: older than 400 days go, the rest stay
    assert report.rollups == scene["old_rollups"]
    assert await count(conn, "SELECT count(*) FROM delivery_rollups") == 2
    assert await count(conn, "SELECT count(*) FROM delivery_rollups WHERE minute < now() - interval '400 days'") == 0
    # a second run finds nothing more
    again = await prune(conn, POLICY)
    assert not again.removed_anything and again.partitions_skipped == []


async def test_zero_days_keeps_everything(conn: Any, scene: dict[str, Any]) -> None:
    before, parts = await snapshot(conn), await partitions(conn)
    report = await prune(conn, replace(POLICY, events_days=0, attempts_days=0, rollups_days=0))
    assert report == PruneReport(dry_run=False)
    assert await snapshot(conn) == before and await partitions(conn) == parts


async def test_each_kind_has_its_own_period(conn: Any, scene: dict[str, Any]) -> None:
    """Attempts kept forever while events go: the old events' attempts stay in their partitions."""
    report = await prune(conn, replace(POLICY, attempts_days=0, rollups_days=0))
    assert report.events == len(scene["gone"]) and not report.partitions and not report.rollups
    assert set(scene["doomed_partitions"]) <= await partitions(conn)
    assert await count(conn, "SELECT count(*) FROM delivery_rollups") == 6
    report = await prune(conn, replace(POLICY, events_days=0, attempts_days=45, rollups_days=0))
    assert report.partitions == scene["doomed_partitions"] and report.events == 0


async def test_a_busy_partition_is_left_for_the_next_run(pool: asyncpg.Pool, conn: Any,
                                                        scene: dict[str, Any]) -> None:
    """A long reader of the attempts holds the drop off: no waiting behind it past lock_timeout."""
    async with pool.acquire() as reader, reader.transaction():
        await reader.execute("LOCK TABLE delivery_attempts IN ACCESS SHARE MODE")
        report = await prune(conn, POLICY)
        assert report.partitions == [] and report.partitions_skipped == scene["doomed_partitions"]
        assert report.events == len(scene["gone"]) and report.rollups == scene["old_rollups"]
    report = await prune(conn, POLICY)
    assert report.partitions == scene["doomed_partitions"] and report.partitions_skipped == []


async def test_dry_run_counts_and_changes_nothing(conn: Any, scene: dict[str, Any]) -> None:
    before, parts = await snapshot(conn), await partitions(conn)
    steps: list[str] = []
    dry = await prune(conn, POLICY, dry_run=True, progress=lambda step, _r: steps.append(step))
    assert await snapshot(conn) == before and await partitions(conn) == parts
    assert dry.dry_run and dry.skipped is None
    assert (dry.events, dry.tasks) == (len(scene["gone"]), scene["gone_tasks"])
    assert dry.partitions == scene["doomed_partitions"]
    old_attempts = await count(conn, OLD_ATTEMPTS)
    assert dry.partition_rows == old_attempts - 1 and dry.default_attempts == 1
    assert dry.rollups == scene["old_rollups"]
    assert {"events", "attempts"} <= set(steps)
    real = await prune(conn, POLICY)
    assert (real.events, real.tasks, real.partitions, real.default_attempts, real.rollups) == (
        dry.events, dry.tasks, dry.partitions, dry.default_attempts, dry.rollups)


async def test_batches_walk_past_open_events(conn: Any, client: uuid.UUID) -> None:
    """Small batches, finished and open events interleaved: every finished one goes, no open one."""
    ago = timedelta(days=90)
    finished, open_ = [], []
    for i in range(9):
        if i % 3 == 2:
            open_.append(await event(conn, client, ago - timedelta(minutes=i), ["failed"]))
        else:
            finished.append(await event(conn, client, ago - timedelta(minutes=i), ["delivered"]))
    reports: list[int] = []
    report = await prune(conn, replace(POLICY, batch=2),
                         progress=lambda step, r: reports.append(r.events) if step == "events" else None)
    assert report.events == len(finished) == 6 and reports == [2, 4, 6]
    assert {r["id"] for r in await conn.fetch("SELECT id FROM events")} == set(open_)
    # rows whose id predates the cutoff but that were created later (not time-ordered ids) stay
    at = datetime.now(UTC) - timedelta(days=1)
    legacy = uuid.UUID(int=uuid_floor(datetime.now(UTC) - timedelta(days=400)).int | 1)
    await conn.execute(
        "INSERT INTO events (id, client_id, idempotency_key, payload, max_attempts, priority, status, task_count,"
        " created_at) VALUES ($1, $2, 'legacy', '{}', 5, 5, 'delivered', 0, $3)", legacy, client, at)
    assert (await prune(conn, POLICY)).events == 0
    assert await count(conn, "SELECT count(*) FROM events WHERE id = $1", legacy) == 1


async def test_one_run_at_a_time(pool: asyncpg.Pool, conn: Any, scene: dict[str, Any]) -> None:
    before = await snapshot(conn)
    async with pool.acquire() as other:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK)
        held = await prune(conn, POLICY)
        assert held.skipped == "another process is pruning" and not held.removed_anything
        assert await snapshot(conn) == before
        # a dry run takes no lock
        assert (await prune(conn, POLICY, dry_run=True)).events == len(scene["gone"])
        await other.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK)
    async with pool.acquire() as a, pool.acquire() as b:
        first, second = await asyncio.gather(prune(a, POLICY), prune(b, POLICY))
    assert first.events + second.events == len(scene["gone"])
    assert sorted(first.partitions + second.partitions) == sorted(scene["doomed_partitions"])
    # the lock is released after a run: nothing keeps the next one out
    assert (await prune(conn, POLICY)).skipped is None


async def test_scheduled_runs_share_the_interval(db_url: str, conn: Any, scene: dict[str, Any]) -> None:
    first = await prune_on_schedule(db_url, POLICY)
    assert first is not None and first.skipped is None and first.events == len(scene["gone"])
    second = await prune_on_schedule(db_url, POLICY)
    assert second is not None and second.skipped == "not due"
    third = await prune_on_schedule(db_url, replace(POLICY, interval_s=0))
    assert third is not None and third.skipped is None
    # a failing run is logged, not raised
    assert await prune_on_schedule(with_database(db_url, "no_such_database"), POLICY) is None


async def test_pruned_events_answer_404(app_client: Caller, conn: Any) -> None:
    client = uuid.UUID(app_client.client_id)
    old = await event(conn, client, timedelta(days=31), ["delivered"])
    kept = await event(conn, client, timedelta(days=31), ["failed"])
    await prune(conn, POLICY)
    status, body, _ = await app_client.call("GET", f"/api/v1/events/{old}")
    assert status == 404 and body["code"] == "NOT_FOUND"
    status, body, _ = await app_client.call("GET", f"/api/v1/events/{kept}")
    assert status == 200 and body["status"] == "failed"
    # its idempotency key is free again
    status, body, _ = await app_client.call("POST", "/api/v1/events",
                                            {"destination": "https://r.example.com/x", "payload": {}},
                                            {"X-Idempotency-Key": f"k-{old}"})
    assert status == 201 and body["id"] != str(old)
    status, body, _ = await app_client.call("POST", "/api/v1/events",
                                            {"destination": "https://r.example.com/x", "payload": {}},
                                            {"X-Idempotency-Key": f"k-{kept}"})
    assert status == 409


async def cli(*args: str, db_url: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": db_url}, cwd=Path(__file__).resolve().parents[2])
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_prune(db_url: str, conn: Any, scene: dict[str, Any], tmp_path: Path) -> None:
    code, out, _ = await cli("prune", "--help", db_url=db_url)
    assert code == 0 and "--dry-run" in out and "--config" in out
    before = await snapshot(conn)
    code, out, err = await cli("prune", "--dry-run", db_url=db_url)
    assert code == 0, err
    assert "would remove" in out
    assert f"events:             {len(scene['gone'])} ({scene['gone_tasks']} deliveries)" in out
    assert await snapshot(conn) == before
    keep = tmp_path / "keep.toml"
    keep.write_text("[retention]\nevents_days = 0\nattempts_days = 0\nrollups_days = 0\n")
    code, out, err = await cli("prune", "--config", str(keep), db_url=db_url)
    assert code == 0, err
    assert "kept forever" in out and "events:             0 (0 deliveries)" in out
    assert await snapshot(conn) == before
    code, out, err = await cli("prune", db_url=db_url)
    assert code == 0, err
    assert f"events: removed {len(scene['gone'])} events" in out   # progress line
    assert f"rollup rows:        {scene['old_rollups']}" in out
    assert await count(conn, "SELECT count(*) FROM events") == len(scene["kept"])
    # someone else pruning: nothing done, exit 1
    await conn.execute("SELECT pg_advisory_lock($1)", RETENTION_LOCK)
    try:
        code, out, err = await cli("prune", db_url=db_url)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK)
    assert code == 1 and "another process is pruning" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[retention]\nevents_days = -3\n")
    code, _, err = await cli("prune", "--config", str(bad), db_url=db_url)
    assert code == 1 and "retention.events_days" in err
