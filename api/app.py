"""The BlackSheep application factory. Every route is declared once in ROUTES (see api.routes)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from blacksheep import Application, Request, Response
from blacksheep.server.routing import Router

from api.context import ApiContext
from api.http import (
    empty_response,
    error_response,
    header,
    json_response,
    query_one,
    read_json,
)
from api.routes import RouteTable, openapi_document
from control.errors import ApiError, NotFound
from control.services.endpoints import EndpointService
from control.services.events import EventService
from control.services.keys import KeyAuthenticator
from control.services.principal import Principal
from control.settings import Settings, load_settings
from control.store.db import create_pool, partitions_of
from control.validate import limit_param

VERSION = "0.1.0"
log = logging.getLogger("mittr.api")
ROUTES = RouteTable()
_CTX: dict[str, ApiContext] = {}

PAGE = (("limit", {"type": "integer", "minimum": 1, "maximum": 100}), ("cursor", {"type": "string"}))
ENDPOINT_BODY: dict[str, Any] = {"type": "object", "properties": {
    "url": {"type": "string"}, "eventTypes": {"type": "array", "items": {"type": "string"}},
    "description": {"type": "string"}, "filter": {"type": "array", "items": {"type": "object"}},
    "transformation": {"type": "string"}, "fifo": {"type": "boolean"},
    "fifoPartitionKey": {"type": "string"}, "maxRetries": {"type": "integer"},
    "retryBackoffMs": {"type": "integer"}, "retryBackoffMax": {"type": "integer"},
    "retryBackoffMult": {"type": "number"}, "timeoutMs": {"type": "integer"},
    "rateLimitPerSec": {"type": "integer"}, "circuitThreshold": {"type": "integer"},
    "circuitResetMs": {"type": "integer"}, "customHeaders": {"type": "object"},
    "allowedCidrs": {"type": "array", "items": {"type": "string"}},
    "blockedCidrs": {"type": "array", "items": {"type": "string"}},
    "deliveryMode": {"type": "string", "enum": ["push", "poll", "storage"]},
    "storageConfig": {"type": "object"}, "signingSecret": {"type": "string"},
    "mtlsCert": {"type": "string"}, "mtlsKey": {"type": "string"}}}
EVENT_BODY: dict[str, Any] = {"type": "object", "required": ["payload"], "properties": {
    "destination": {"type": "string"}, "eventType": {"type": "string"}, "payload": {"type": "object"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "maxAttempts": {"type": "integer", "minimum": 1}, "priority": {"type": "integer", "minimum": 1, "maximum": 10},
    "delaySeconds": {"type": "integer", "minimum": 0}}}


def ctx() -> ApiContext:
    return _CTX["ctx"]


Authed = Callable[[Request, Principal], Awaitable[Response]]


def authed(scope: str) -> Callable[[Authed], Callable[[Request], Awaitable[Response]]]:
    """Authenticate, check the scope, then call the handler with the caller's Principal."""
    def wrap(fn: Authed) -> Callable[[Request], Awaitable[Response]]:
        # No functools.wraps: BlackSheep binds parameters from the signature it sees, and the
        # wrapped handler's `who` must not look like a body parameter.
        async def handler(request: Request) -> Response:
            who = await ctx().principal(request)
            who.require(scope)
            return await fn(request, who)
        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler
    return wrap


def route_id(request: Request, name: str = "id") -> str:
    return str(request.route_values[name])


# --- health and docs -----------------------------------------------------------------------------
@ROUTES.add("GET", "/health", "Liveness and database reachability", "system", None)
async def health(request: Request) -> Response:
    try:
        await ctx().pool.fetchval("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means "not healthy"
        return json_response({"status": "degraded", "database": "unreachable"}, 503)
    return json_response({"status": "ok", "database": "ok", "version": VERSION})


# --- events -------------------------------------------------------------------------------------
@ROUTES.add("POST", "/api/v1/events", "Create an event for delivery", "events", "events:write", 201,
            body=EVENT_BODY, headers=(("X-Idempotency-Key", True),), responses={409: "Duplicate key"})
@authed("events:write")
async def create_event(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    out = await ctx().events.create(who, body, header(request, b"x-idempotency-key"))
    return json_response(out, 201)


@ROUTES.add("GET", "/api/v1/events", "List events", "events", "events:read",
            query=(("status", {"type": "string",
                               "enum": ["queued", "delivering", "delivered", "failed", "dead"]}), *PAGE))
@authed("events:read")
async def list_events(request: Request, who: Principal) -> Response:
    out = await ctx().events.list(who, query_one(request, "status"),
                                  limit_param(query_one(request, "limit"), 20, 100),
                                  query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("GET", "/api/v1/events/{id}", "Get an event with its delivery attempts", "events", "events:read")
@authed("events:read")
async def get_event(request: Request, who: Principal) -> Response:
    return json_response(await ctx().events.get(who, route_id(request)))


@ROUTES.add("GET", "/api/v1/events/{id}/deliveries", "Every attempt for an event", "deliveries",
            "events:read")
@authed("events:read")
async def event_deliveries(request: Request, who: Principal) -> Response:
    return json_response(await ctx().events.deliveries(who, route_id(request)))


# --- endpoints ----------------------------------------------------------------------------------
@ROUTES.add("POST", "/api/v1/endpoints", "Create an endpoint", "endpoints", "endpoints:write", 201,
            body={**ENDPOINT_BODY, "required": ["url", "eventTypes"]})
@authed("endpoints:write")
async def create_endpoint(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await ctx().endpoints.create(who, body), 201)


@ROUTES.add("GET", "/api/v1/endpoints", "List endpoints", "endpoints", "endpoints:read", query=PAGE)
@authed("endpoints:read")
async def list_endpoints(request: Request, who: Principal) -> Response:
    out = await ctx().endpoints.list(who, limit_param(query_one(request, "limit"), 20, 100),
                                     query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("GET", "/api/v1/endpoints/{id}", "Get an endpoint", "endpoints", "endpoints:read")
@authed("endpoints:read")
async def get_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await ctx().endpoints.get(who, route_id(request)))


@ROUTES.add("PATCH", "/api/v1/endpoints/{id}", "Update an endpoint", "endpoints", "endpoints:write",
            body=ENDPOINT_BODY)
@authed("endpoints:write")
async def update_endpoint(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await ctx().endpoints.update(who, route_id(request), body))


@ROUTES.add("DELETE", "/api/v1/endpoints/{id}", "Delete an endpoint (its pending deliveries end dead)",
            "endpoints", "endpoints:write", 204)
@authed("endpoints:write")
async def delete_endpoint(request: Request, who: Principal) -> Response:
    await ctx().endpoints.delete(who, route_id(request))
    return empty_response(204)


@ROUTES.add("POST", "/api/v1/endpoints/{id}/pause", "Pause delivery (events stay queued)", "endpoints",
            "endpoints:write")
@authed("endpoints:write")
async def pause_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await ctx().endpoints.set_status(who, route_id(request), "paused"))


@ROUTES.add("POST", "/api/v1/endpoints/{id}/resume", "Resume delivery", "endpoints", "endpoints:write")
@authed("endpoints:write")
async def resume_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await ctx().endpoints.set_status(who, route_id(request), "active"))


# --- application ---------------------------------------------------------------------------------
async def _not_found(request: Request) -> Response:
    return error_response(NotFound(f"no route for {request.method} {request.path}"))


def create_app(settings: Settings | None = None) -> Application:
    settings = settings or load_settings()
    app = Application(router=Router())
    openapi = openapi_document(ROUTES, VERSION)

    for r in ROUTES.routes:
        app.router.add(r.method, r.path, r.handler)

    async def openapi_json(request: Request) -> Response:
        return json_response(openapi)

    app.router.add("GET", "/openapi.json", openapi_json)
    app.router.fallback = _not_found

    async def on_api_error(application: Application, request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    async def on_error(application: Application, request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.path})
        return json_response({"error": "internal server error", "code": "INTERNAL"}, 500)

    app.exceptions_handlers[ApiError] = on_api_error  # type: ignore[assignment]
    app.exceptions_handlers[Exception] = on_error  # type: ignore[assignment]

    async def start(application: Application) -> None:
        db = settings.database
        pool = await create_pool(settings.database_url, db["pool_min"], db["pool_max"])
        parts = await partitions_of(pool)
        _CTX["ctx"] = ApiContext(settings, pool, KeyAuthenticator(pool), EndpointService(pool, parts),
                                 EventService(pool, parts), int(settings.api["max_body_bytes"]))

    async def stop(application: Application) -> None:
        current = _CTX.pop("ctx", None)
        if current is not None:
            await current.pool.close()

    app.on_start += start
    app.on_stop += stop
    return app
