"""Request ids, request logs and counters, the stats WebSocket and /metrics, wired into the app.

Every HTTP response carries `X-Request-ID` (the caller's, when it is a sane token, else a new one),
and every log line written while serving that request carries it as `request_id`. One debug line
per request and one warning per error response; paths only, never query strings, bodies or keys.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

import orjson
from blacksheep import Application, Request, Response, WebSocket

from api.handlers.metrics import prometheus
from api.handlers.stats import STATS_WS_PATH, stats_ws
from api.http import header
from control import metrics

log = logging.getLogger("mittr.api.request")
REQUEST_ID: ContextVar[str | None] = ContextVar("mittr_request_id", default=None)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
INGEST_ROUTES = {"/api/v1/events": "single", "/api/v1/events/batch": "batch"}
Handler = Callable[[Request], Awaitable[Response]]


def request_id(given: str | None) -> str:
    return given if given is not None and _SANE_ID.match(given) else uuid.uuid4().hex


def _install_log_field() -> None:
    """Every log record made while a request is served gets its id (installed once per process)."""
    old = logging.getLogRecordFactory()
    if getattr(old, "mittr_request_id", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = old(*args, **kwargs)
        rid = REQUEST_ID.get()
        if rid is not None:
            record.request_id = rid
        return record

    factory.mittr_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _ingested(path: str, response: Response) -> int:
    """Events a successful ingest response accepted (a batch says how many)."""
    route = INGEST_ROUTES.get(path)
    if route is None or response.status != 201:
        return 0
    if route == "single":
        return 1
    content = response.content
    try:
        return int(orjson.loads(content.body)["count"]) if content is not None and content.body else 0
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return 0


def request_middleware(app: Application) -> Callable[[Request, Handler], Awaitable[Response]]:
    async def middleware(request: Request, handler: Handler) -> Response:
        if isinstance(request, WebSocket):
            return await handler(request)
        rid = request_id(header(request, b"x-request-id"))
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        try:
            try:
                response = await handler(request)
            except Exception as exc:   # answered by the app's own handlers, but inside this request
                response = await app.handle_request_handler_exception(request, exc)
            response.set_header(b"X-Request-ID", rid.encode())
            status = response.status
            fields = {"method": request.method, "path": request.path, "status": status,
                      "ms": round((time.perf_counter() - started) * 1000, 2)}
            log.debug("request", extra=fields)
            if status >= 400:
                log.warning("request failed", extra=fields)
            metrics.count_request(request.method, status)
            if request.method == "POST":
                metrics.count_ingested(INGEST_ROUTES.get(request.path, ""), _ingested(request.path, response))
            return response
        finally:
            REQUEST_ID.reset(token)
    return middleware


def install(app: Application) -> None:
    """Call once from create_app, before the app starts."""
    _install_log_field()
    app.middlewares.append(request_middleware(app))
    app.router.add_ws(STATS_WS_PATH, stats_ws)
    app.router.add("GET", "/metrics", prometheus)
