"""A BlackSheep receiver for Mittr deliveries: verify the raw body, answer 401 if it is not Mittr's."""

from __future__ import annotations

import os

from blacksheep import Application, Request, Response

from mittr_client import VerificationError, verify

SECRET = os.environ.get("MITTR_SIGNING_SECRET", "")
received: list[tuple[str | None, object]] = []   # use your database in production: delivery is at least once


async def webhooks(request: Request) -> Response:
    body = await request.read() or b""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers.items()}
    try:
        payload = verify(SECRET, body, headers)
    except VerificationError:
        return Response(401)
    received.append((headers.get("x-mittr-event-id") or headers.get("webhook-id"), payload))
    return Response(204)


def make_app() -> Application:
    app = Application()
    app.router.add_post("/webhooks", webhooks)
    return app


if __name__ == "__main__":
    import uvicorn  # or granian: `granian --interface asgi examples.receivers.blacksheep_receiver:app`

    uvicorn.run(make_app(), port=3000)
