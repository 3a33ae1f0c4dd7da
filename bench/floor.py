"""The same-stack floor for single-event ingest: a bare BlackSheep app on granian (same workers,
same uvloop) whose one route parses the JSON body with orjson and inserts one row holding the
payload bytes with asyncpg (one round trip, pool without reset query, like the API's), answering
201 with the row's id. Nothing else: no auth, no validation, no idempotency, no tasks, no wake-up.
What the API does on top of this is what a single ingest costs beyond the stack.

`granian --interface asgi bench.floor:app` with DATABASE_URL set; the table is made on start. It
answers on the API's path, so that the harness's own client drives both.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import orjson
from blacksheep import Application, Request, Response
from blacksheep.contents import Content

from control.store.db import create_pool

TABLE = """CREATE TABLE IF NOT EXISTS bench_floor (
    id uuid PRIMARY KEY, idempotency_key text, payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"""
INSERT = "INSERT INTO bench_floor (id, idempotency_key, payload) VALUES ($1, $2, $3) RETURNING created_at"

app = Application()
_state: dict[str, Any] = {}


async def _start(application: Application) -> None:
    pool = await create_pool(os.environ["DATABASE_URL"], 2, 10)
    # Every worker makes the table on start; IF NOT EXISTS does not stop two workers racing on the
    # catalogue (a unique violation in pg_type), so they take turns.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('bench_floor'))")
        await conn.execute(TABLE)
    _state["pool"] = pool


async def _stop(application: Application) -> None:
    await _state["pool"].close()


app.on_start += _start
app.on_stop += _stop


@app.router.post("/api/v1/events")   # the API's path, so the harness's client is unchanged
async def floor(request: Request) -> Response:
    body = orjson.loads(await request.read() or b"{}")
    event_id = uuid.uuid4()
    key = request.get_first_header(b"X-Idempotency-Key")
    created = await _state["pool"].fetchval(INSERT, event_id, key.decode() if key else None,
                                            orjson.dumps(body.get("payload")))
    return Response(201, content=Content(b"application/json", orjson.dumps(
        {"id": str(event_id), "createdAt": created.isoformat()})))


@app.router.get("/health")
async def health(request: Request) -> Response:
    return Response(200, content=Content(b"text/plain", b"ok"))
