"""Event types: create, list, get (by id or by name), update, delete."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import empty_response, json_response, query_one, read_json
from api.routing import PAGE, ROUTES, authed, route_id
from control.services.event_types import EventTypeService
from control.services.principal import Principal
from control.validate import limit_param

EVENT_TYPE_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[^\s*]+$", "example": "order.created"},
    "description": {"type": "string", "maxLength": 2000, "nullable": True,
                    "example": "Fired when a new order is placed"},
    "schema": {"type": "object", "nullable": True,
               "description": "a JSON Schema the payloads of this type must satisfy (refused if it does not compile)",
               "example": {"type": "object", "required": ["orderId", "amount"],
                           "properties": {"orderId": {"type": "string"}, "amount": {"type": "integer"}}}},
    "schemaVersion": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"\S", "nullable": True,
                      "example": "1.0"}}}


def event_types() -> EventTypeService:
    return ctx().service(EventTypeService)


@ROUTES.add("POST", "/api/v1/event-types", "Register an event type (optionally with a JSON Schema)",
            "event-types", "event-types:write", 201, body={**EVENT_TYPE_BODY, "required": ["name"]},
            responses={409: "An event type with this name exists"})
@authed()
async def create_event_type(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await event_types().create(who, body), 201)


@ROUTES.add("GET", "/api/v1/event-types", "List event types", "event-types", "event-types:read", query=PAGE)
@authed()
async def list_event_types(request: Request, who: Principal) -> Response:
    out = await event_types().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                   query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("GET", "/api/v1/event-types/by-name/{name}", "Get an event type by name", "event-types",
            "event-types:read")
@authed()
async def get_event_type_by_name(request: Request, who: Principal) -> Response:
    return json_response(await event_types().get_by_name(who, route_id(request, "name")))


@ROUTES.add("GET", "/api/v1/event-types/{id}", "Get an event type", "event-types", "event-types:read")
@authed()
async def get_event_type(request: Request, who: Principal) -> Response:
    return json_response(await event_types().get(who, route_id(request)))


@ROUTES.add("PUT", "/api/v1/event-types/{id}", "Update an event type (only the fields given)",
            "event-types", "event-types:write", body=EVENT_TYPE_BODY,
            responses={409: "An event type with this name exists"})
@authed()
async def update_event_type(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await event_types().update(who, route_id(request), body))


@ROUTES.add("DELETE", "/api/v1/event-types/{id}", "Delete an event type", "event-types",
            "event-types:write", 204)
@authed()
async def delete_event_type(request: Request, who: Principal) -> Response:
    await event_types().delete(who, route_id(request))
    return empty_response(204)
