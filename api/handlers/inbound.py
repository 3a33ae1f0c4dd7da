"""Inbound webhooks: inbound endpoints (CRUD), the preset catalogue, and the public receiver."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from blacksheep import Request, Response

from api.context import ctx
from api.csrf import own_origin
from api.handlers.endpoints import JSONPATH
from api.http import empty_response, json_response, query_one, read_body, read_json
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.policy.inbound_presets import catalogue
from control.policy.inbound_verify import MAX_SECRET, MODES
from control.services.events import EventService
from control.services.inbound import MAX_DESTINATIONS, InboundService, Incoming, presets_json
from control.services.principal import Principal
from control.validate import limit_param

TIME = {"type": "string", "format": "date-time"}
# What control/services/inbound.py (_parse) checks. The presets come from config/inbound_presets.toml;
# each names a verification mode, and the mode says which secrets sourceConfig holds.
_PRESETS = catalogue()
_SECRET: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_SECRET}
_MODE_SECRET: dict[str, dict[str, Any]] = {
    "standard_webhooks": {**_SECRET, "pattern": "^(whsec_)?([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
                          "description": "whsec_ then the base64 key (the prefix is optional)"}}


def _source_config(mode: str) -> dict[str, Any]:
    names = MODES[mode].secrets
    return {"type": "object", "additionalProperties": False, "nullable": not names,
            **({"required": list(names)} if names else {}),
            "properties": {n: _MODE_SECRET.get(mode, _SECRET) for n in names},
            "description": f"the {mode} mode's secrets: {', '.join(names) or 'none'}"}


_INBOUND_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S", "example": "GitHub Webhooks"},
    "pathSuffix": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$", "example": "github-prod"},
    "source": {"type": "string", "enum": sorted(_PRESETS), "description": "a preset (GET /api/v1/inbound-presets)"},
    "sourceConfig": nullable({"type": "object", "additionalProperties": {"type": "string"},
                              "description": "the secrets the preset's mode needs (secret | username+password | "
                                             "token); returned only by the create call, masked afterwards"}),
    "destinationIds": nullable({"type": "array", "maxItems": MAX_DESTINATIONS,
                                "items": {"type": "string", "format": "uuid"},
                                "description": "endpoints of yours to forward to (none: fan out by event type)"}),
    "eventTypeMapping": nullable({**JSONPATH, "maxLength": 1024, "description": "a JSONPath over {headers, query, "
                                  "data} giving the event type", "example": "$.headers.X-GitHub-Event"}),
    "description": nullable({"type": "string", "maxLength": 2000}),
    "transformation": nullable({"type": "string", "maxLength": 65536,
                                "description": "JavaScript defining handler(webhook); refused if it does not compile"}),
    "status": nullable({"type": "string", "enum": ["active", "inactive"]})}
INBOUND_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": _INBOUND_FIELDS,
                                "description": "a new source needs its mode's sourceConfig too",
                                "example": {"description": "Updated", "status": "inactive"}}
# Create: name, pathSuffix and source, with the secrets of the source's mode (oneOf by mode).
CREATE_INBOUND_BODY: dict[str, Any] = {
    "type": "object", "required": ["name", "pathSuffix", "source"], "additionalProperties": False,
    "properties": _INBOUND_FIELDS,
    "oneOf": [{"title": mode, "properties": {
        "source": {"type": "string", "enum": sorted(k for k, p in _PRESETS.items() if p.mode == mode)},
        "sourceConfig": _source_config(mode)}, **({"required": ["sourceConfig"]} if MODES[mode].secrets else {})}
        for mode in sorted({p.mode for p in _PRESETS.values()})],
    "example": {"name": "GitHub Webhooks", "pathSuffix": "github-prod", "source": "github",
                "sourceConfig": {"secret": "your-github-webhook-secret"},
                "eventTypeMapping": "$.headers.X-GitHub-Event", "description": "Production GitHub webhook receiver"}}
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
            "inbound", "inbound:write", 201, body=CREATE_INBOUND_BODY,
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
