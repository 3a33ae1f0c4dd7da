"""An aiohttp receiver for Mittr deliveries (the same shape works for BlackSheep and Starlette:
read the raw body, pass it with the headers to `verify`)."""

from __future__ import annotations

import os

from aiohttp import web

from mittr_client import VerificationError, verify

SECRET = os.environ.get("MITTR_SIGNING_SECRET", "")
RECEIVED = web.AppKey("received", list)


async def webhooks(request: web.Request) -> web.Response:
    try:
        payload = verify(SECRET, await request.read(), request.headers)
    except VerificationError:
        return web.Response(status=400)
    request.app[RECEIVED].append((request.headers.get("X-Mittr-Event-ID"), payload))
    return web.Response(status=204)


def make_app() -> web.Application:
    app = web.Application()
    app[RECEIVED] = []
    app.router.add_post("/webhooks", webhooks)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), port=3000)
