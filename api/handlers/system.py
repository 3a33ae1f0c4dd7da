"""Health."""

from __future__ import annotations

from blacksheep import Request, Response

from api.context import ctx
from api.http import json_response
from api.routing import ROUTES

VERSION = "0.1.0"


@ROUTES.add("GET", "/health", "Liveness and database reachability", "system", None)
async def health(request: Request) -> Response:
    try:
        await ctx().pool.fetchval("SELECT 1")
    except Exception:
        return json_response({"status": "degraded", "database": "unreachable"}, 503)
    return json_response({"status": "ok", "database": "ok", "version": VERSION})
