"""Events: create, list, get, and the attempts of one event."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import header, json_response, query_one, read_json
from api.routing import PAGE, ROUTES, authed, route_id
from control.services.events import EventService
from control.services.principal import Principal
from control.validate import limit_param

EVENT_BODY: dict[str, Any] = {"type": "object", "required": ["payload"], "properties": {
    "destination": {"type": "string"}, "eventType": {"type": "string"}, "payload": {"type": "object"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "maxAttempts": {"type": "integer", "minimum": 1}, "priority": {"type": "integer", "minimum": 1, "maximum": 10},
    "delaySeconds": {"type": "integer", "minimum": 0}}}


def events() -> EventService:
    return ctx().service(EventService)


@ROUTES.add("POST", "/api/v1/events", "Create an event for delivery", "events", "events:write", 201,
            body=EVENT_BODY, headers=(("X-Idempotency-Key", True),), responses={409: "Duplicate key"})
@authed("events:write")
async def create_event(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    out = await events().create(who, body, header(request, b"x-idempotency-key"))
    return json_response(out, 201)


@ROUTES.add("GET", "/api/v1/events", "List events", "events", "events:read",
            query=(("status", {"type": "string",
                               "enum": ["queued", "delivering", "delivered", "failed", "dead"]}), *PAGE))
@authed("events:read")
async def list_events(request: Request, who: Principal) -> Response:
    out = await events().list(who, query_one(request, "status"),
                              limit_param(query_one(request, "limit"), 20, 100), query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("GET", "/api/v1/events/{id}", "Get an event with its delivery attempts", "events", "events:read")
@authed("events:read")
async def get_event(request: Request, who: Principal) -> Response:
    return json_response(await events().get(who, route_id(request)))


@ROUTES.add("GET", "/api/v1/events/{id}/deliveries", "Every attempt for an event", "deliveries",
            "events:read")
@authed("events:read")
async def event_deliveries(request: Request, who: Principal) -> Response:
    return json_response(await events().deliveries(who, route_id(request)))
