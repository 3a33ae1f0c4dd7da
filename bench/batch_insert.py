"""Batch ingest alone against PostgreSQL: `python -m bench.batch_insert`.

`BatchService.create` called in-process, one batch of 100 direct events after another on one
connection: no HTTP, no JSON parsing of the request and no other process competing, so the CPU
each side spends per event can be read off cleanly (this process by `time.process_time`, the
connection's Postgres backend from /proc). For A/B runs, run it from two checkouts
(`PYTHONPATH=<checkout>`), interleaved. Postgres as in `bench.writer` (`bench/scratch_db.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from bench.scratch_db import scratch_database, scratch_server
from control.services.batch import BatchService
from control.services.keys import create_client
from control.services.principal import Principal
from control.store.db import connect, create_pool, migrate

WARM_UP = 50


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process on this machine (the server must be local)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_body(b: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {"events": [{"idempotencyKey": f"k-{b}-{i}", "destination": f"https://h{i % 16}.example.com/in",
                        "payload": payload} for i in range(100)]}


async def run(url: str, batches: int, payload_bytes: int) -> dict[str, float]:
    conn = await connect(url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(url, 1, 1)
    try:
        client = await create_client(pool, "bench")
        who = Principal(client["id"], None, frozenset(), None)
        svc = BatchService(pool, 4096)
        payload = {"data": "x" * payload_bytes}
        backend = int(await pool.fetchval("SELECT pg_backend_pid()"))
        for b in range(WARM_UP):
            await svc.create(who, batch_body(-1 - b, payload))
        ours, theirs, started = time.process_time(), cpu_seconds(backend), time.perf_counter()
        for b in range(batches):
            await svc.create(who, batch_body(b, payload))
        elapsed = time.perf_counter() - started
        n = batches * 100
        out = {"events_per_s": round(n / elapsed),
               "client_us_per_event": round(1e6 * (time.process_time() - ours) / n, 1),
               "postgres_us_per_event": round(1e6 * (cpu_seconds(backend) - theirs) / n, 1)}
        await svc.aclose()
        return out
    finally:
        await pool.close()


async def main_async(args: argparse.Namespace) -> None:
    async with scratch_server("mittr-batch-bench-") as admin:
        for i in range(args.repeat):
            async with scratch_database(admin, "mittr_batch_bench") as url:
                print(f"run {i + 1}:", await run(url, args.batches, args.payload_bytes), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.batch_insert", description="Time batch ingest alone.")
    p.add_argument("--batches", type=int, default=1000, help="batches of 100 events per run (default 1000)")
    p.add_argument("--payload-bytes", type=int, default=1000, help="payload size (default 1000)")
    p.add_argument("--repeat", type=int, default=3, help="independent runs, each on a fresh database")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
