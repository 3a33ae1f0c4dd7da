"""Starlette and FastAPI receivers for Mittr deliveries (FastAPI is Starlette underneath: the same
three lines, `await request.body()` then `verify`, then 204 or 401)."""

from __future__ import annotations

import os

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mittr_client import VerificationError, verify

SECRET = os.environ.get("MITTR_SIGNING_SECRET", "")
received: list[tuple[str | None, object]] = []   # use your database in production: delivery is at least once


async def webhooks(request: Request) -> Response:
    try:
        payload = verify(SECRET, await request.body(), request.headers)
    except VerificationError:
        return Response(status_code=401)
    received.append((request.headers.get("X-Mittr-Event-ID"), payload))
    return Response(status_code=204)


starlette_app = Starlette(routes=[Route("/webhooks", webhooks, methods=["POST"])])

fastapi_app = FastAPI()
# A plain Request parameter: FastAPI must not parse the body, the signature covers its exact bytes.
fastapi_app.add_api_route("/webhooks", webhooks, methods=["POST"], status_code=204)
