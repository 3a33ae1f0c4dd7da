"""Statistics: a snapshot over HTTP, and the same pushed every second over a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from blacksheep import Request, Response, WebSocket
from blacksheep.server.websocket import WebSocketError

from api.context import ctx
from api.csrf import check_origin
from api.http import header, json_response
from api.routing import ROUTES, authed
from control.errors import ApiError
from control.services.principal import Principal
from control.services.sessions import COOKIE as SESSION_COOKIE
from control.services.stats import StatsService

log = logging.getLogger("mittr.api.stats")
STATS_WS_PATH = "/api/v1/stats/ws"
POLICY_VIOLATION = 1008

_INT = {"type": "integer"}
_RATE = {"type": "number", "description": "per second over lastMinute.windowSeconds"}
SHARD = ROUTES.component("ShardStats", {
    "type": "object", "required": ["index", "range", "epoch", "buffered", "inFlight", "deliveredTotal", "updatedAt"],
    "properties": {"index": _INT, "range": {"type": "string", "description": "partitions lo-hi"}, "epoch": _INT,
                   "buffered": _INT, "inFlight": _INT,
                   "deliveredTotal": {"type": "integer", "description": "since the shard process started"},
                   "updatedAt": {"type": "string", "format": "date-time"}}})
STATS = ROUTES.component("Stats", {
    "type": "object",
    "required": ["timestamp", "queue", "queueDepth", "inFlight", "deliveredPerSec", "failedPerSec", "lastMinute",
                 "shards"],
    "properties": {
        "timestamp": {"type": "string", "format": "date-time"},
        "queue": {"type": "object", "description": "unfinished deliveries by state",
                  "properties": {"queued": _INT, "delivering": _INT, "failed": _INT}},
        "queueDepth": _INT, "inFlight": _INT, "deliveredPerSec": _RATE, "failedPerSec": _RATE,
        "lastMinute": {"type": "object", "properties": {
            "windowSeconds": {"type": "number"}, "attempts": _INT, "successes": _INT, "failed": _INT,
            "delivered": _INT, "dead": _INT}},
        "shards": {"type": "array", "items": SHARD}}})


def stats() -> StatsService:
    return ctx().service(StatsService)


@ROUTES.add("GET", "/api/v1/stats", "Queue statistics (snapshot)", "stats", "stats:read", response=STATS)
@authed()
async def get_stats(request: Request, who: Principal) -> Response:
    return json_response(await stats().snapshot(who))


@ROUTES.add("GET", STATS_WS_PATH,
            "WebSocket: the /api/v1/stats snapshot pushed every second (connect with Upgrade: websocket)",
            "stats", None, 101, query=(("key", {"type": "string", "description": "API key"}),
                                       ("projectId", {"type": "string", "description": "as X-Project-ID"})),
            response=STATS,
            responses={401: "Bad key: the socket is accepted, then closed with code 1008",
                       426: "A plain HTTP request: this route speaks WebSocket"})
async def stats_ws_http(request: Request) -> Response:
    """What a plain HTTP GET (no upgrade) gets; the WebSocket itself is served by `stats_ws`."""
    raise ApiError("this route speaks WebSocket: connect with Upgrade: websocket", code="UPGRADE_REQUIRED",
                   status=426, headers={"Upgrade": "websocket"})


async def _until_closed(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketError, OSError, RuntimeError):
        while True:
            await websocket.receive()


async def stats_ws(websocket: WebSocket) -> None:
    """Authenticate with ?key= (or X-API-Key), else the session cookie of our own pages, and scope
    with ?projectId= (or X-Project-ID) exactly as every route does (browsers cannot set headers on a
    WebSocket), then push until closed."""
    raw_key = websocket.query.get("key", [None])[0] or header(websocket, b"x-api-key")
    raw_project = websocket.query.get("projectId", [None])[0] or header(websocket, b"x-project-id")
    cookie = websocket.cookies.get(SESSION_COOKIE) if raw_key is None else None
    try:
        if cookie:
            # The dashboard's session. Browsers send cookies on a cross-site WebSocket handshake too,
            # and no CORS guards it: the page must be ours (browsers always send Origin here).
            check_origin(websocket, ctx().settings.section("auth")["public_url"])
            who = await ctx().sessions.authenticate(cookie)
        else:
            who = await ctx().auth.authenticate(raw_key)
        who = await ctx().in_project(who, raw_project)
        who.require("stats:read")
    except ApiError as exc:
        await websocket.accept()
        await websocket.send_text(orjson.dumps(exc.body()).decode())
        await websocket.close(POLICY_VIOLATION, exc.message)
        return
    await websocket.accept()
    interval = int(ctx().settings.section("stats")["ws_interval_ms"]) / 1000
    closed = asyncio.get_running_loop().create_task(_until_closed(websocket))
    try:
        while not closed.done():
            snapshot = await stats().snapshot(who)
            await websocket.send_text(orjson.dumps(snapshot).decode())
            await asyncio.wait({closed}, timeout=interval)
    except (WebSocketError, OSError, RuntimeError) as exc:   # the client went away mid-send
        log.debug("stats socket ended", extra={"error": str(exc)})
    finally:
        closed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closed
