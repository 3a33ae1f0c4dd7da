"""A Stripe API stand-in on 127.0.0.1 that speaks the wire format: it answers each request with a
recorded body (tests/fixtures/stripe/*.json, Stripe's own object shapes, adjusted per test) and
records what it was sent (method, path, headers, the form fields as sent), so tests assert the
requests the `stripe` SDK makes for Mittr, on the wire: Authorization, Stripe-Version,
Idempotency-Key, Content-Type and every form field."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"


def fixture(name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return out


def patched(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` merged in (nested objects merged key by key; lists and values replaced)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = patched(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Sent:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    form: dict[str, str]
    pairs: list[tuple[str, str]]


@dataclass
class Reply:
    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    served: bool = False


@dataclass
class StripeWire:
    """Replies by (method, path), in the order given; the last one for a path is repeated until
    another is added for it."""
    replies: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def reply(self, method: str, path: str, body: dict[str, Any], status: int = 200,
              headers: dict[str, str] | None = None) -> None:
        self.replies.setdefault((method, path), []).append(Reply(body, status, headers or {}))

    def calls(self, method: str, path: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and s.path == path]

    def clear(self) -> None:
        self.sent.clear()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = (await request.read()).decode()
        pairs = parse_qsl(raw, keep_blank_values=True)
        self.sent.append(Sent(request.method, request.path, request.query_string, dict(request.headers),
                              dict(pairs), pairs))
        queue = self.replies.get((request.method, request.path))
        if not queue:
            return web.json_response({"error": {
                "message": f"Unrecognized request URL ({request.method}: {request.path}).",
                "type": "invalid_request_error"}}, status=404)
        while len(queue) > 1 and queue[0].served:
            queue.pop(0)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        reply.served = True
        return web.json_response(reply.body, status=reply.status, headers={"Request-Id": "req_mittrWire",
                                                                           **reply.headers})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
