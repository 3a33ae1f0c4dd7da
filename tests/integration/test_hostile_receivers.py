"""Receivers that answer with more than anyone should read: a 200 MB Content-Length body, an
endless chunked stream, one giant chunk, a body until a close that never comes, endless headers,
a chunk-size line without end. Each attempt must be recorded at once with the first 4 KiB kept,
the connection closed (never drained, never pooled), and the process must not grow by anything
near what the receiver sent. Real sockets on 127.0.0.1 against a raw asyncio server."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from control.policy.ssrf import AddressPolicy
from engine.sender import Senders, SendResult

OPEN = AddressPolicy.build(allow_private=True)
BLOCK = b"".join(b"%07d\n" % i for i in range(8192))       # 64 KiB of numbered lines
KEPT = BLOCK[:4096].decode()
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
TIMEOUT_MS = 20_000            # what an attempt may take; each one here must end long before it


@dataclass
class Hostile:
    """A raw HTTP/1.1 server: each request's path picks how it answers; every answer is written
    with drain(), so the server itself holds little however much it sends."""

    port: int = 0
    connections: int = 0
    sent: dict[str, int] = field(default_factory=dict)        # bytes written per path, once its connection ended
    ended: dict[str, asyncio.Event] = field(default_factory=dict)
    server: asyncio.Server | None = None

    async def start(self) -> Hostile:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                path = head.split(b" ")[1].decode().split("/")[1]
                if path == "ok":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
                    continue
                event = self.ended.setdefault(path, asyncio.Event())
                sent = 0
                try:
                    async for piece in ANSWERS[path]():
                        writer.write(piece)
                        sent += len(piece)
                        await writer.drain()
                except (ConnectionError, OSError):
                    pass
                self.sent[path] = sent
                event.set()
                break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def _forever(first: bytes, each: bytes, limit: int = 1 << 40) -> AsyncIterator[bytes]:
    yield first
    sent = 0
    while sent < limit:
        yield each
        sent += len(each)


async def _huge_length() -> AsyncIterator[bytes]:
    total = 200_000_000
    async for piece in _forever(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total, BLOCK, total):
        yield piece


async def _slow_start() -> AsyncIterator[bytes]:
    """The first body bytes in small, separate pieces (a receiver whose body trickles in), then a flood."""
    yield b"HTTP/1.1 200 OK\r\nContent-Length: 200000000\r\n\r\n"
    for i in range(0, 4096, 512):
        yield BLOCK[i:i + 512]
        await asyncio.sleep(0.02)
    async for piece in _forever(BLOCK[4096:], BLOCK, 200_000_000 - len(BLOCK)):
        yield piece


ANSWERS: dict[str, Callable[[], AsyncIterator[bytes]]] = {
    "huge-length": _huge_length,
    "slow-start": _slow_start,
    "endless-chunks": lambda: _forever(CHUNKED, b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK)),
    "giant-chunk": lambda: _forever(CHUNKED + b"ffffffffffffffff\r\n", BLOCK),
    "until-close": lambda: _forever(b"HTTP/1.1 200 OK\r\n\r\n", BLOCK),
    "endless-headers": lambda: _forever(b"HTTP/1.1 200 OK\r\n", b"X-Filler: " + b"a" * 1000 + b"\r\n"),
    "endless-chunk-line": lambda: _forever(CHUNKED, b"0" * 4096),
}


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = await Hostile().start()
    yield server
    await server.stop()


async def measured(send: Callable[[], Awaitable[SendResult]]) -> tuple[SendResult, float, int]:
    """The result, the seconds it took, and the peak of Python memory allocated meanwhile."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        started = time.monotonic()
        result = await send()
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, elapsed, peak


@pytest.mark.parametrize("path", ["huge-length", "slow-start", "endless-chunks", "giant-chunk", "until-close"])
async def test_an_oversized_body_is_cut_at_the_kept_limit_and_the_connection_dropped(hostile: Hostile,
                                                                                       path: str) -> None:
    senders = Senders(16, 4096)
    try:
        result, elapsed, peak = await measured(
            lambda: senders.default.send(hostile.url(f"/{path}"), b"{}", {}, TIMEOUT_MS, OPEN))
        assert (result.status_code, result.outcome, result.category) == (200, "success", None), result
        assert result.response_body == KEPT
        assert elapsed < 10, f"took {elapsed:.1f}s"
        assert peak < 16 * 2**20, f"Python memory grew by {peak / 2**20:.0f} MiB"
        await asyncio.wait_for(hostile.ended[path].wait(), 10)    # the sender closed the connection
        assert hostile.sent[path] < 64 * 2**20, "the body was not read to its end"
        again = await senders.default.send(hostile.url("/ok"), b"{}", {}, TIMEOUT_MS, OPEN)
        assert (again.status_code, again.response_body) == (200, "ok")
        assert hostile.connections == 2, "the cut-short connection is not reused"
    finally:
        await senders.close()


@pytest.mark.parametrize(("path", "reason"), [
    ("endless-headers", "response head larger than 65536 bytes"),
    ("endless-chunk-line", "chunk-size line longer than 1024 bytes"),
])
async def test_endless_framing_is_a_malformed_response(hostile: Hostile, path: str, reason: str) -> None:
    senders = Senders(16, 4096)
    try:
        result, elapsed, peak = await measured(
            lambda: senders.default.send(hostile.url(f"/{path}"), b"{}", {}, TIMEOUT_MS, OPEN))
        assert (result.status_code, result.outcome, result.category) == (None, "failure", "other"), result
        assert result.error == f"malformed response: {reason}"
        assert elapsed < 10 and peak < 16 * 2**20, (elapsed, peak)
        await asyncio.wait_for(hostile.ended[path].wait(), 10)
    finally:
        await senders.close()


@pytest.mark.parametrize("path", ["huge-length", "slow-start"])
async def test_the_aiohttp_fallback_keeps_4_kib_and_closes_rather_than_drains(hostile: Hostile, path: str) -> None:
    """A non-ASCII URL takes the aiohttp path; it must behave the same."""
    senders = Senders(16, 4096)
    try:
        result, elapsed, peak = await measured(
            lambda: senders.default.send(hostile.url(f"/{path}/é"), b"{}", {}, TIMEOUT_MS, OPEN))
        assert (result.status_code, result.outcome) == (200, "success"), result
        assert result.response_body == KEPT
        assert elapsed < 10 and peak < 16 * 2**20, (elapsed, peak)
        await asyncio.wait_for(hostile.ended[path].wait(), 10)
        assert hostile.sent[path] < 64 * 2**20
        again = await senders.default.send(hostile.url("/ok/é"), b"{}", {}, TIMEOUT_MS, OPEN)
        assert (again.status_code, again.response_body) == (200, "ok")
        assert hostile.connections == 2, "the cut-short connection is not reused"
    finally:
        await senders.close()
