"""A real HTTP receiver on 127.0.0.1 for tests: records every request and answers as scripted."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from control.policy.partitioning import partition_for, shard_for, target_key


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float            # time.time() on receipt
    peer_cert: dict[str, object] | None = None   # the client certificate, on a TLS sink that asks for one
    remote: str | None = None                    # the sender's address


# n-th request to a path (1-based) -> status, or (status, headers, seconds to wait before answering)
Script = Callable[[int], "int | tuple[int, dict[str, str], float]"]


@dataclass
class Sink:
    host: str = "127.0.0.1"
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, Script] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    answered: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition | None = None
    _bodies: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def script(self, path: str, fn: Script) -> None:
        self.scripts[path] = fn

    def script_body(self, path: str, fn: Callable[[int, bytes], int | tuple[int, dict[str, str], float]]) -> None:
        """Answer by the n-th request carrying this exact body (e.g. fail one event, not the path)."""
        seen: dict[bytes, int] = defaultdict(int)
        bodies = self._bodies

        def by_body(_n: int) -> int | tuple[int, dict[str, str], float]:
            body = bodies[-1]
            seen[body] += 1
            return fn(seen[body], body)
        self.scripts[path] = by_body

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.counts[request.path] += 1
        self._bodies.append(body)
        n = self.counts[request.path]
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        self.received.append(Received(request.path, dict(request.headers), body, time.time(), peer, request.remote))
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()
        answer = self.scripts.get(request.path, lambda _n: 200)(n)
        status, headers, wait = (answer, {}, 0.0) if isinstance(answer, int) else answer
        if wait:
            await asyncio.sleep(wait)
        self.answered[request.path] += 1
        return web.Response(status=status, text="OK" if status < 400 else "nope", headers=headers)

    async def start(self) -> Sink:
        self._arrived = asyncio.Condition()
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[Received]:
        assert self._arrived is not None
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.at(path)) >= count), timeout)
        return self.at(path)


PARTITIONS = 4096      # the template database's partitions


def shard_of(sink: Sink, shards: int = 2) -> int:
    """Which of a `mittr serve` test server's shards delivers to this sink's origin."""
    return shard_for(partition_for(target_key(None, sink.url), PARTITIONS), PARTITIONS, shards)


async def sink_on_shard(reference: Sink, same_shard: bool, shards: int = 2) -> Sink:
    """A started receiver on a new origin that the same shard as `reference`'s (or another) serves."""
    spares: list[Sink] = []
    try:
        while True:
            s = await Sink().start()
            if (shard_of(s, shards) == shard_of(reference, shards)) == same_shard:
                return s
            spares.append(s)
    finally:
        for spare in spares:
            await spare.stop()
