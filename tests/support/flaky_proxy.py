"""A real HTTP proxy in front of a real server that misbehaves on cue: refuses with a status
(429/503 with Retry-After) or forwards a request and then drops the connection before answering,
the way a load balancer restart loses an answer the server already committed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

# (method, path, n-th such request, 1-based) -> "pass" | "lose-answer" | (status, headers)
Plan = Callable[[str, str, int], "str | tuple[int, dict[str, str]]"]


@dataclass
class FlakyProxy:
    upstream: str
    plan: Plan = lambda _m, _p, _n: "pass"
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, what we did)
    port: int = 0
    _counts: dict[tuple[str, str], int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = (request.method, request.path)
        self._counts[key] = n = self._counts.get(key, 0) + 1
        action = self.plan(request.method, request.path, n)
        body = await request.read()
        if isinstance(action, tuple):
            self.seen.append((request.method, request.path, str(action[0])))
            return web.json_response({"error": "injected", "code": "INJECTED"}, status=action[0], headers=action[1])
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._http.request(request.method, self.upstream + request.rel_url.path_qs, data=body,
                                      headers=headers) as upstream:
            payload = await upstream.read()
            status, ctype = upstream.status, upstream.headers.get("Content-Type", "application/json")
        self.seen.append((request.method, request.path, action if action != "pass" else str(status)))
        if action == "lose-answer":
            assert request.transport is not None
            request.transport.abort()       # the server did the work; the caller never hears of it
            return web.Response(status=500)  # never written: the connection is gone
        return web.Response(status=status, body=payload, content_type=ctype.split(";")[0])

    async def start(self) -> FlakyProxy:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()
