"""The shard's own HTTP/1.1 client against a raw socket server: every response framing it must
read (Content-Length, chunked with extensions and trailers, until close, interim 1xx, no body),
keep-alive reuse after each, malformed answers, and header injection refused before sending."""

from __future__ import annotations

import asyncio

from control.policy.ssrf import AddressPolicy
from engine.sender import Senders

OPEN = AddressPolicy.build(allow_private=True)
RESPONSES = {
    b"/cl": b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello",
    b"/chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-T: 1\r\n\r\n"),
    b"/close": b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nConnection: close\r\n\r\nuntil close body",
    b"/cont": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"/extra": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n",
    b"/bad": b"garbage\r\n\r\n",
}
CLOSES = (b"/close", b"/extra", b"/bad")


async def test_response_framings_and_keep_alive() -> None:
    connections = 0
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                seen.append(head + await reader.readexactly(length))
                path = head.split(b" ")[1].split(b"?")[0].split(b"?")[0]
                writer.write(RESPONSES[path])
                await writer.drain()
                if path in CLOSES:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    senders = Senders(16, 1024)
    try:
        async def send(path: str, headers: dict[str, str] | None = None) -> tuple[object, ...]:
            r = await senders.default.send(f"http://127.0.0.1:{port}{path}?q=1", b'{"a":1}', headers or {}, 2000, OPEN)
            return r.status_code, r.response_body, r.category, r.retry_after

        assert await send("/cl", {"X-Custom": "v"}) == (201, "hello", None, None)
        assert await send("/chunk") == (200, "hello world", None, None)
        assert await send("/cont") == (204, "", None, None)
        assert connections == 1, "keep-alive: one connection for three requests"
        assert await send("/close") == (503, "until close body", "5xx", "7")
        assert await send("/extra") == (200, "ok", None, None)   # stray bytes: counted, connection dropped
        assert await send("/cl") == (201, "hello", None, None)
        status, _, category, _ = await send("/bad")
        assert (status, category) == (None, "other")
        status, _, category, _ = await send("/cl", {"X-Evil": "a\r\nInjected: 1"})
        assert (status, category) == (None, "other")
        assert not any(b"Injected" in req for req in seen), "an invalid header is refused before sending"
        first = seen[0]
        assert first.startswith(b"POST /cl?q=1 HTTP/1.1\r\n") and b"\r\nX-Custom: v\r\n" in first
        assert first.endswith(b'\r\n\r\n{"a":1}') and b"Content-Length: 7\r\n" in first
    finally:
        await senders.close()
        server.close()
        await server.wait_closed()
