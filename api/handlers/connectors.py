"""Connectors: named alert channels (Slack, Discord, Teams, e-mail, webhook, PagerDuty)."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import empty_response, json_response, query_one, read_json
from api.routing import PAGE, ROUTES, authed, route_id
from control.policy.alert_payloads import TYPES
from control.services.connectors import NOTIFY_KINDS, ConnectorService
from control.services.principal import Principal
from control.validate import limit_param

TEMPLATE: dict[str, Any] = {"type": "object", "properties": {
    "title": {"type": "string"}, "text": {"type": "string"}, "color": {"type": "string", "example": "#ba5b38"}}}
CONNECTOR_BODY: dict[str, Any] = {"type": "object", "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 128},
    "type": {"type": "string", "enum": list(TYPES)},
    "config": {"type": "object", "description": "The type's settings; secrets are masked on read"},
    "template": TEMPLATE,
    "notify": {"type": "array", "items": {"type": "string", "enum": list(NOTIFY_KINDS)}}}}


def connectors() -> ConnectorService:
    return ctx().service(ConnectorService)


@ROUTES.add("POST", "/api/v1/connectors", "Create a connector", "connectors", "connectors:write", 201,
            body={**CONNECTOR_BODY, "required": ["name", "type", "config"]},
            responses={409: "A connector with this name exists"})
@authed()
async def create_connector(request: Request, who: Principal) -> Response:
    return json_response(await connectors().create(who, await read_json(request, ctx().max_body)), 201)


@ROUTES.add("GET", "/api/v1/connectors", "List connectors", "connectors", "connectors:read", query=PAGE)
@authed()
async def list_connectors(request: Request, who: Principal) -> Response:
    return json_response(await connectors().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                                 query_one(request, "cursor")))


@ROUTES.add("GET", "/api/v1/connectors/{name}", "Get a connector", "connectors", "connectors:read")
@authed()
async def get_connector(request: Request, who: Principal) -> Response:
    return json_response(await connectors().get(who, route_id(request, "name")))


@ROUTES.add("PUT", "/api/v1/connectors/{name}", "Update a connector (config is merged)", "connectors",
            "connectors:write", body=CONNECTOR_BODY)
@authed()
async def update_connector(request: Request, who: Principal) -> Response:
    return json_response(await connectors().update(who, route_id(request, "name"),
                                                   await read_json(request, ctx().max_body)))


@ROUTES.add("DELETE", "/api/v1/connectors/{name}", "Delete a connector", "connectors", "connectors:write", 204,
            responses={409: "Alert rules use this connector"})
@authed()
async def delete_connector(request: Request, who: Principal) -> Response:
    await connectors().delete(who, route_id(request, "name"))
    return empty_response(204)
