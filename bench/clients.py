"""Load generators for the harness, each run in its own process (spawned): ingest through the API;
the raw ceiling, a bare asyncio-protocol client writing prebuilt signed requests straight to the
sink; and the aiohttp reference, the same bodies posted by a bare aiohttp client."""

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
                  concurrency: int, typed: int = 0) -> LoadResult:
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
                    body = orjson.dumps({"eventType": f"bench.t{start % typed}", "payload": ev["payload"]} if typed
                                        else {"destination": ev["destination"], "payload": ev["payload"]})
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
           concurrency: int, typed: int = 0) -> LoadResult:
    """`typed` > 0: single events carry `eventType` bench.t<seq % typed> instead of a destination
    (the harness subscribes one endpoint per type)."""
    import uvloop

    return uvloop.run(_ingest(base, key, run, range(start, stop), sink_ports, size, batch, concurrency, typed))


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


class _RawConn:
    """One keep-alive connection of the raw ceiling: writes the next prebuilt request as soon as
    the previous response (the sink's fixed-length answer) is complete. No HTTP library at all."""

    def __init__(self, requests: list[bytes], todo: _Counter, res: LoadResult, done: asyncio.Future[None]) -> None:
        self.requests, self.todo, self.res, self.done = requests, todo, res, done
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connect(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._next()

    def _next(self) -> None:
        seq = self.todo.take()
        if seq < 0:
            assert self.transport is not None
            self.transport.close()
            if not self.done.done():
                self.done.set_result(None)
            return
        assert self.transport is not None
        self.transport.write(self.requests[seq % len(self.requests)])

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            at = self.buf.find(b"Content-Length: ", 0, head_end)
            length = int(self.buf[at + 16: self.buf.find(b"\r\n", at)]) if at >= 0 else 0
            end = head_end + 4 + length
            if len(self.buf) < end:
                return
            ok = self.buf[9:10] == b"2"
            self.buf = self.buf[end:]
            if ok:
                self.res.accepted += 1
            else:
                self.res.errors += 1
            self._next()


class _Counter:
    def __init__(self, count: int) -> None:
        self.left, self.count = count, count

    def take(self) -> int:
        if self.left <= 0:
            return -1
        self.left -= 1
        return self.count - self.left - 1


class _RawProtocol(asyncio.Protocol):
    def __init__(self, conn: _RawConn) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.connect(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.conn.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.conn.done.done():
            self.conn.done.set_result(None)


def raw_requests(sink_ports: list[int], size: int, n: int = 1000) -> list[bytes]:
    """Complete signed HTTP/1.1 requests, built before the clock starts (one per sink port in turn)."""
    secret = "whsec_" + "k" * 32
    out = []
    for seq in range(n):
        body = orjson.dumps(payload(seq, size))
        headers = delivery_headers({}, secret, body, uuid.uuid4(), 1, int(time.time()))
        port = sink_ports[seq % len(sink_ports)]
        head = f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        out.append(head.encode() + body)
    return out


async def _raw_ceiling(sink_ports: list[int], count: int, size: int, concurrency: int) -> LoadResult:
    res = LoadResult(0, 0, 0.0, 0.0)
    loop = asyncio.get_running_loop()
    # One request list per port, so each connection keeps posting to the port it is connected to.
    per_port = {port: raw_requests([port], size, max(1, 1000 // len(sink_ports))) for port in sink_ports}
    todo = _Counter(count)
    conns = []
    for i in range(concurrency):
        port = sink_ports[i % len(sink_ports)]
        conns.append(_RawConn(per_port[port], todo, res, loop.create_future()))
    res.started = time.time()
    for i, conn in enumerate(conns):
        port = sink_ports[i % len(sink_ports)]
        await loop.create_connection(lambda c=conn: _RawProtocol(c), "127.0.0.1", port)  # type: ignore[misc]
    await asyncio.gather(*(c.done for c in conns))
    res.ended = time.time()
    return res


def raw_ceiling(sink_ports: list[int], count: int, size: int, concurrency: int) -> LoadResult:
    """The machine's ceiling for this sink: a bare asyncio-protocol client with prebuilt requests,
    the engine's concurrency, keep-alive; no HTTP library, no Postgres."""
    import uvloop

    return uvloop.run(_raw_ceiling(sink_ports, count, size, concurrency))
