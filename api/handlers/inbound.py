"""Inbound webhooks: inbound endpoints (CRUD), the preset catalogue, and the public receiver."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from blacksheep import Request, Response

from api.context import ctx
from api.csrf import own_origin
from api.http import empty_response, json_response, query_one, read_body, read_json
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.services.events import EventService
from control.services.inbound import MAX_DESTINATIONS, InboundService, Incoming, presets_json
from control.services.principal import Principal
from control.validate import limit_param

TIME = {"type": "string", "format": "date-time"}
INBOUND_BODY: dict[str, Any] = {"type": "object", "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "pathSuffix": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$"},
    "source": {"type": "string", "minLength": 1, "maxLength": 64},
    "sourceConfig": {"type": "object", "additionalProperties": {"type": "string"},
                     "description": "the secrets the preset's mode needs (secret | username+password | token); "
                                    "returned only by the create call, masked afterwards"},
    "destinationIds": {"type": "array", "maxItems": MAX_DESTINATIONS, "items": {"type": "string", "format": "uuid"}},
    "eventTypeMapping": nullable({"type": "string", "maxLength": 1024}),
    "description": {"type": "string", "maxLength": 2000},
    "transformation": nullable({"type": "string", "maxLength": 65536}),
    "status": {"type": "string", "enum": ["active", "inactive"]}}}
INBOUND = ROUTES.component("InboundEndpoint", {
    "type": "object",
    "required": ["id", "name", "pathSuffix", "url", "source", "mode", "sourceConfig", "destinationIds",
                 "eventTypeMapping", "description", "transformation", "status", "projectId", "createdAt",
                 "updatedAt"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "pathSuffix": {"type": "string"},
        "url": {"type": "string"}, "source": {"type": "string"}, "mode": nullable({"type": "string"}),
        "sourceConfig": {"type": "object", "additionalProperties": {"type": "string"}},
        "destinationIds": {"type": "array", "items": {"type": "string"}},
        "eventTypeMapping": nullable({"type": "string"}), "description": {"type": "string"},
        "transformation": nullable({"type": "string"}), "status": {"type": "string", "enum": ["active", "inactive"]},
        "projectId": nullable({"type": "string"}), "createdAt": TIME, "updatedAt": TIME}})
PRESETS = {"type": "object", "required": ["data", "count", "modes"], "properties": {
    "data": {"type": "array", "items": {"type": "object", "required": ["source", "name", "description", "mode"],
                                        "properties": {"source": {"type": "string"}, "name": {"type": "string"},
                                                       "description": {"type": "string"},
                                                       "mode": {"type": "string"}}}},
    "count": {"type": "integer"}, "modes": {"type": "object"}}}
ACCEPTED = {"type": "object", "required": ["accepted", "eventId", "eventType", "duplicate"], "properties": {
    "accepted": {"type": "boolean"}, "eventId": nullable({"type": "string"}), "eventType": {"type": "string"},
    "duplicate": {"type": "boolean", "description": "the platform's delivery id was seen before"},
    "cancelled": {"type": "boolean", "description": "the transformation cancelled it"}}}


def inbound() -> InboundService:
    return ctx().service(InboundService)


@ROUTES.add("POST", "/api/v1/inbound-endpoints", "Create an inbound endpoint (a public URL for one platform)",
            "inbound", "inbound:write", 201, body={**INBOUND_BODY, "required": ["name", "pathSuffix", "source"]},
            response=INBOUND, responses={409: "The path suffix is taken"})
@authed()
async def create_inbound_endpoint(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await inbound().create(who, body), 201)


@ROUTES.add("GET", "/api/v1/inbound-endpoints", "List inbound endpoints", "inbound", "inbound:read", query=PAGE,
            response=list_of(INBOUND))
@authed()
async def list_inbound_endpoints(request: Request, who: Principal) -> Response:
    return json_response(await inbound().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                              query_one(request, "cursor")))


@ROUTES.add("GET", "/api/v1/inbound-endpoints/{id}", "Get an inbound endpoint", "inbound", "inbound:read",
            response=INBOUND)
@authed()
async def get_inbound_endpoint(request: Request, who: Principal) -> Response:
    return json_response(await inbound().get(who, route_id(request)))


@ROUTES.add("PATCH", "/api/v1/inbound-endpoints/{id}", "Update an inbound endpoint (only the fields given)",
            "inbound", "inbound:write", body=INBOUND_BODY, response=INBOUND,
            responses={409: "The path suffix is taken"})
@authed()
async def update_inbound_endpoint(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await inbound().update(who, route_id(request), body))


@ROUTES.add("DELETE", "/api/v1/inbound-endpoints/{id}", "Delete an inbound endpoint", "inbound", "inbound:write",
            204)
@authed()
async def delete_inbound_endpoint(request: Request, who: Principal) -> Response:
    await inbound().delete(who, route_id(request))
    return empty_response(204)


@ROUTES.add("GET", "/api/v1/inbound-presets", "The platform presets and their verification modes", "inbound",
            "inbound:read", response=PRESETS)
@authed()
async def list_inbound_presets(request: Request, who: Principal) -> Response:
    return json_response(presets_json())


@ROUTES.add("POST", "/inbound/{pathSuffix}", "Receive a platform's webhook (public; verified by the preset's "
            "signature scheme)", "inbound", None, 202, response=ACCEPTED,
            responses={401: "Bad or missing signature, or a timestamp outside the tolerance",
                       404: "Unknown or inactive path", 413: "Body too large", 429: "Too many requests to this path"})
async def receive_inbound(request: Request) -> Response:
    c = ctx()
    suffix = str(request.route_values["pathSuffix"])
    body = await read_body(request, c.max_body)
    raw_query = request.url.query.decode("latin-1") if request.url.query else ""
    origin = own_origin(request, c.settings.section("auth")["public_url"]) or ""
    url = origin + request.url.path.decode("latin-1") + (f"?{raw_query}" if raw_query else "")
    query = dict(parse_qsl(raw_query, keep_blank_values=True, max_num_fields=100))
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
    if request.get_first_header(b"content-type") is None and request.content_type():
        headers.append(("content-type", request.content_type().decode("latin-1")))   # in-process clients
    out = await inbound().receive(Incoming(suffix, body, headers, query, url), c.service(EventService))
    return json_response(out, 202)
