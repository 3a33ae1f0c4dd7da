"""The outcome writer alone against Postgres: `python -m bench.writer`.

The end-to-end drain is bounded by the writer (BENCHMARKS.md, "Where the time goes"), but its
figure moves with everything else on a 2-core machine. This times only `OutcomeWriter.flush_once`:
`--tasks` claimed tasks get one outcome each per round (retries that keep their claim, the last
round delivered), flushed in batches of `--batch`, and it prints outcomes recorded per second and
the per-batch latency for the two ways a batch is written, interleaved batch by batch so that both
see the same machine: a first try (attempt rows by COPY) and a retry after an ambiguous failure
(already-applied outcomes looked up, attempt rows by INSERT ... ON CONFLICT DO NOTHING). Postgres is
embedded in a temporary directory unless DATABASE_URL is set (then a database is created on that
server and dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.scratch_db import scratch_database, scratch_server
from control.services.events import time_ordered_ids
from control.store.db import connect, create_pool, migrate
from control.store.queries import q
from engine.model import Outcome, Task
from engine.writer import OutcomeWriter

SETUP = """
WITH c AS (INSERT INTO clients (id, name, signing_secret) VALUES ($1, 'bench', 'whsec_bench') RETURNING id),
ev AS (
    INSERT INTO events (id, client_id, idempotency_key, destination, payload, max_attempts, priority, status,
                        task_count)
    SELECT id, $1, id::text, 'https://sink.example/hook', '\\x7b7d'::bytea, 25, 5, 'delivering', 1
    FROM unnest($2::uuid[]) AS id
    RETURNING id
)
INSERT INTO tasks (id, event_id, client_id, partition, status, max_attempts, priority, next_attempt_at,
                   claim_epoch)
SELECT t, e, $1, (random() * 4095)::int, 'delivering', 25, 5, now(), $4
FROM unnest($3::uuid[], $2::uuid[]) AS u(t, e)
"""


def _outcomes(tasks: list[Task], attempt: int, last: bool) -> list[Outcome]:
    now = datetime.now(UTC)
    ids = time_ordered_ids(len(tasks))
    out = []
    for task, attempt_id in zip(tasks, ids, strict=True):
        task.attempts = attempt
        ok = last
        out.append(Outcome(
            task=task, attempt_id=attempt_id, attempt_number=attempt, status_code=200 if ok else 503,
            response_body="ok" if ok else "busy", error="" if ok else "HTTP 503", error_category=None if ok else "5xx",
            outcome="success" if ok else "failure", duration_ms=3 + attempt_id.int % 40, overhead_us=20,
            attempted_at=now, new_status="delivered" if ok else "failed",
            next_attempt_at=now + (timedelta(0) if ok else timedelta(seconds=1)), keep_claim=not ok,
            delivered_at=now if ok else None, attempts=attempt, prior_attempts=attempt - 1))
    return out


async def _tasks(conn: asyncpg.Connection, n: int, epoch: int) -> list[Task]:
    client_id = uuid.uuid4()
    event_ids, task_ids = time_ordered_ids(n), time_ordered_ids(n)
    await conn.execute(SETUP, client_id, event_ids, task_ids, epoch)
    return [Task(id=t, event_id=e, client_id=client_id, project_id=None, endpoint_id=None, partition=0, seq=0,
                 attempts=0, max_attempts=25, priority=5, due_ms=0, destination="https://sink.example/hook",
                 event_type=None, payload=b"{}", headers={}, client_secret="", target="sink")
            for t, e in zip(task_ids, event_ids, strict=True)]


def _summary(latencies: list[float], batch: int) -> dict[str, Any]:
    lat = sorted(latencies)
    return {"batches": len(lat), "outcomes_per_s": round(batch * len(lat) / sum(lat)),
            "batch_ms_p50": round(statistics.median(lat) * 1000, 2),
            "batch_ms_p95": round(lat[int(len(lat) * 0.95)] * 1000, 2)}


async def run(url: str, n: int, batch: int, rounds: int) -> dict[str, Any]:
    conn = await connect(url)
    try:
        await migrate(conn, 4096)
        await conn.execute(q("ensure_attempt_partitions"), 3)
        epoch = int(await conn.fetchval("SELECT nextval('lease_epoch_seq')"))
        tasks = {path: await _tasks(conn, n, epoch) for path in ("first", "retry")}
    finally:
        await conn.close()
    pool = await create_pool(url, 1, 2)
    writers = {path: OutcomeWriter(pool, lambda: epoch, batch, 5) for path in tasks}
    latencies: dict[str, list[float]] = {path: [] for path in tasks}
    try:
        for r in range(1, rounds + 1):
            outcomes = {path: _outcomes(ts, r, r == rounds) for path, ts in tasks.items()}
            for i in range(0, n, batch):
                for path in ("first", "retry") if (i // batch) % 2 else ("retry", "first"):
                    writer, chunk = writers[path], outcomes[path][i:i + batch]
                    for o in chunk:
                        writer.add(o)
                    if path == "retry":   # as after a failure that may have committed
                        writer._tried.update(o.attempt_id for o in chunk)
                    t0 = time.perf_counter()
                    await writer.flush_once()
                    latencies[path].append(time.perf_counter() - t0)
        recorded = await pool.fetchval("SELECT count(*) FROM delivery_attempts")
    finally:
        await pool.close()
    assert recorded == 2 * n * rounds, "every attempt recorded once"
    return {path: _summary(lat, batch) for path, lat in latencies.items()}


async def main_async(args: argparse.Namespace) -> None:
    async with scratch_server("mittr-writer-bench-") as admin:
        for i in range(args.repeat):
            async with scratch_database(admin, "mittr_writer_bench") as url:
                print(f"run {i + 1}:", await run(url, args.tasks, args.batch, args.rounds), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.writer", description="Time the outcome writer alone.")
    p.add_argument("--tasks", type=int, default=20000, help="claimed tasks (default 20000)")
    p.add_argument("--rounds", type=int, default=3, help="outcomes per task (default 3)")
    p.add_argument("--batch", type=int, default=500, help="writer batch (default 500, the engine default)")
    p.add_argument("--repeat", type=int, default=3, help="independent runs, each on a fresh database")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
