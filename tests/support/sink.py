"""A real HTTP receiver on 127.0.0.1 for tests: records every request and answers as scripted."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float            # time.time() on receipt


Script = Callable[[int], int]   # n-th request to a path (1-based) -> status to answer


@dataclass
class Sink:
    host: str = "127.0.0.1"
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, Script] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def script(self, path: str, fn: Script) -> None:
        self.scripts[path] = fn

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.counts[request.path] += 1
        n = self.counts[request.path]
        self.received.append(Received(request.path, dict(request.headers), body, time.time()))
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()
        status = self.scripts.get(request.path, lambda _n: 200)(n)
        return web.Response(status=status, text="OK" if status < 400 else "nope")

    async def start(self) -> Sink:
        self._arrived = asyncio.Condition()
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
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
