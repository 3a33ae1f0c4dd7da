"""A minimal HTTP/1.1 keep-alive receiver for benchmarks, in its own process.

An asyncio Protocol (on uvloop) that answers every POST with 200 (or 500 at `--failure-rate`),
optionally after `--sink-latency-ms`, on one port per simulated endpoint. It counts receipts per
second and, when the body carries `"ts":<unix seconds>` (the harness puts the accept time there),
the end-to-end latency. `GET /__stats` returns the figures as JSON; `POST /__reset` clears them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from typing import Any

import orjson

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nContent-Type: text/plain\r\n\r\nfail"
TS_MARK = b'"ts":'


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.received = 0
        self.ok = 0
        self.failed = 0
        self.per_second: Counter[int] = Counter()
        self.latencies_ms: list[float] = []
        self.first = 0.0
        self.last = 0.0

    def record(self, body: bytes, ok: bool) -> None:
        now = time.time()
        if not self.received:
            self.first = now
        self.last = now
        self.received += 1
        if ok:
            self.ok += 1
            self.per_second[int(now)] += 1
        else:
            self.failed += 1
        at = body.find(TS_MARK)
        if at >= 0 and ok:
            end = at + 5
            while end < len(body) and body[end] not in b",}":
                end += 1
            try:
                self.latencies_ms.append((now - float(body[at + 5:end])) * 1000)
            except ValueError:
                pass

    def as_json(self) -> bytes:
        return orjson.dumps({"received": self.received, "ok": self.ok, "failed": self.failed,
                             "first": self.first, "last": self.last,
                             "perSecond": {str(k): v for k, v in sorted(self.per_second.items())},
                             "latenciesMs": self.latencies_ms})


class SinkProtocol(asyncio.Protocol):
    def __init__(self, stats: Stats, latency_s: float, failure_rate: float) -> None:
        self.stats, self.latency_s, self.failure_rate = stats, latency_s, failure_rate
        self.buf = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport   # uvloop's TCPTransport is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self.buf[:head_end]).lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15: line_end if line_end >= 0 else len(head)])
            total = head_end + 4 + length
            if len(self.buf) < total:
                return
            body = bytes(self.buf[head_end + 4: total])
            del self.buf[:total]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if head.startswith(b"get /__stats"):
            payload = self.stats.as_json()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            return
        if head.startswith(b"post /__reset"):
            self.stats.reset()
            self.transport.write(OK)
            return
        ok = not (self.failure_rate and random.random() < self.failure_rate)
        self.stats.record(body, ok)
        reply = OK if ok else FAIL
        if self.latency_s:
            asyncio.get_running_loop().call_later(self.latency_s, self._write, reply)
        else:
            self.transport.write(reply)

    def _write(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)


async def serve(ports: list[int], latency_ms: float, failure_rate: float) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    for port in ports:
        await loop.create_server(lambda: SinkProtocol(stats, latency_ms / 1000, failure_rate),
                                 "127.0.0.1", port, backlog=4096, reuse_address=True)
    print("sink ready", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__)
    parser.add_argument("--ports", required=True, help="comma-separated ports, one per endpoint")
    parser.add_argument("--sink-latency-ms", type=float, default=0.0)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve([int(p) for p in args.ports.split(",")], args.sink_latency_ms, args.failure_rate))


if __name__ == "__main__":
    main()
