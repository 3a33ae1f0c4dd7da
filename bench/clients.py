"""Load generators for the harness, each run in its own process (spawned): ingest through the API,
and the raw ceiling, a bare aiohttp client posting signed bodies straight to the sink."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import aiohttp
import orjson

from engine.sender import delivery_headers

BATCH = 100


@dataclass
class LoadResult:
    accepted: int
    errors: int
    started: float
    ended: float
    first_error: str = ""


def payload(seq: int, size: int) -> dict[str, object]:
    """An event payload of about `size` bytes carrying its send time (the sink reads `ts`)."""
    base = {"ts": round(time.time(), 6), "seq": seq, "pad": ""}
    pad = max(0, size - len(orjson.dumps(base)))
    base["pad"] = "x" * pad
    return base


def destination(sink_ports: list[int], seq: int) -> str:
    return f"http://127.0.0.1:{sink_ports[seq % len(sink_ports)]}/hook"


def _event(run: str, seq: int, sink_ports: list[int], size: int) -> dict[str, object]:
    return {"idempotencyKey": f"{run}-{seq}", "destination": destination(sink_ports, seq),
            "payload": payload(seq, size)}


async def _ingest(base: str, key: str, run: str, seqs: range, sink_ports: list[int], size: int, batch: bool,
                  concurrency: int) -> LoadResult:
    res = LoadResult(0, 0, time.time(), 0.0)
    step = BATCH if batch else 1
    chunks = iter(range(seqs.start, seqs.stop, step))
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        async def worker() -> None:
            for start in chunks:
                if batch:
                    evs = [_event(run, s, sink_ports, size) for s in range(start, min(start + step, seqs.stop))]
                    path, body, h = "/api/v1/events/batch", orjson.dumps({"events": evs}), headers
                else:
                    ev = _event(run, start, sink_ports, size)
                    path = "/api/v1/events"
                    body = orjson.dumps({"destination": ev["destination"], "payload": ev["payload"]})
                    h = {**headers, "X-Idempotency-Key": str(ev["idempotencyKey"])}
                    evs = [ev]
                async with session.post(path, data=body, headers=h) as resp:
                    text = await resp.read()
                    if resp.status == 201:
                        res.accepted += len(evs)
                    else:
                        res.errors += len(evs)
                        res.first_error = res.first_error or f"{resp.status} {text[:200]!r}"
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    res.ended = time.time()
    return res


def ingest(base: str, key: str, run: str, start: int, stop: int, sink_ports: list[int], size: int, batch: bool,
           concurrency: int) -> LoadResult:
    import uvloop

    return uvloop.run(_ingest(base, key, run, range(start, stop), sink_ports, size, batch, concurrency))


async def _ceiling(sink_ports: list[int], count: int, size: int, concurrency: int) -> LoadResult:
    res = LoadResult(0, 0, 0.0, 0.0)
    secret = "whsec_" + "k" * 32
    todo = iter(range(count))
    bodies = [orjson.dumps(payload(seq, size)) for seq in range(1000)]   # prebuilt: the engine's are too
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                     skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding")) as session:
        async def worker() -> None:
            for seq in todo:
                body = bodies[seq % 1000]
                headers = delivery_headers({}, secret, body, uuid.uuid4(), 1, int(time.time()))
                async with session.post(destination(sink_ports, seq), data=body, headers=headers,
                                        allow_redirects=False) as resp:
                    await resp.content.read(4096)
                    if 200 <= resp.status < 300:
                        res.accepted += 1
                    else:
                        res.errors += 1
        res.started = time.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        res.ended = time.time()
    return res


def ceiling(sink_ports: list[int], count: int, size: int, concurrency: int) -> LoadResult:
    import uvloop

    return uvloop.run(_ceiling(sink_ports, count, size, concurrency))
