"""Alerting: rules over delivery health (CRUD, enable/disable), evaluation on demand, history."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import empty_response, json_response, query_one, read_json
from api.routing import PAGE, ROUTES, authed, route_id
from control.policy.alert_payloads import SEVERITIES, TYPES
from control.policy.alert_rules import METRICS, OPERATORS
from control.services.alerting import AlertingService
from control.services.principal import Principal
from control.validate import limit_param

CONDITION: dict[str, Any] = {"type": "object", "required": ["metric", "operator", "value", "window"], "properties": {
    "metric": {"type": "string", "enum": list(METRICS)},
    "operator": {"type": "string", "enum": list(OPERATORS)},
    "value": {"type": "number"},
    "window": {"type": "string", "pattern": r"^[0-9]+[mhd]$", "example": "5m"}}}
ACTION: dict[str, Any] = {"type": "object", "description": "Inline settings of a type, or `connector` naming one",
                          "properties": {
    "type": {"type": "string", "enum": list(TYPES)}, "connector": {"type": "string"},
    "webhookUrl": {"type": "string", "format": "uri"}, "channel": {"type": "string"},
    "message": {"type": "string"}, "to": {"type": "array", "items": {"type": "string", "format": "email"}},
    "subject": {"type": "string"}, "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "routingKey": {"type": "string"}, "severity": {"type": "string", "enum": list(SEVERITIES)}}}
RULE_BODY: dict[str, Any] = {"type": "object", "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 256},
    "description": {"type": "string", "maxLength": 2000},
    "enabled": {"type": "boolean"},
    "condition": CONDITION,
    "action": ACTION,
    "cooldown": {"type": "string", "pattern": r"^[0-9]+[smhd]$", "example": "15m"},
    "endpointId": {"type": "string", "format": "uuid", "nullable": True}}}


def alerting() -> AlertingService:
    return ctx().service(AlertingService)


@ROUTES.add("POST", "/api/v1/alerting/rules", "Create an alert rule", "alerting", "alerting:write", 201,
            body={**RULE_BODY, "required": ["name", "condition", "action"]})
@authed()
async def create_rule(request: Request, who: Principal) -> Response:
    return json_response(await alerting().create(who, await read_json(request, ctx().max_body)), 201)


@ROUTES.add("GET", "/api/v1/alerting/rules", "List alert rules", "alerting", "alerting:read", query=PAGE)
@authed()
async def list_rules(request: Request, who: Principal) -> Response:
    return json_response(await alerting().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                               query_one(request, "cursor")))


@ROUTES.add("GET", "/api/v1/alerting/rules/{id}", "Get an alert rule", "alerting", "alerting:read")
@authed()
async def get_rule(request: Request, who: Principal) -> Response:
    return json_response(await alerting().get(who, route_id(request)))


@ROUTES.add("PUT", "/api/v1/alerting/rules/{id}", "Update an alert rule (the fields given)", "alerting",
            "alerting:write", body=RULE_BODY)
@authed()
async def update_rule(request: Request, who: Principal) -> Response:
    return json_response(await alerting().update(who, route_id(request), await read_json(request, ctx().max_body)))


@ROUTES.add("DELETE", "/api/v1/alerting/rules/{id}", "Delete an alert rule", "alerting", "alerting:write", 204)
@authed()
async def delete_rule(request: Request, who: Principal) -> Response:
    await alerting().delete(who, route_id(request))
    return empty_response(204)


@ROUTES.add("POST", "/api/v1/alerting/rules/{id}/enable", "Enable an alert rule", "alerting", "alerting:write")
@authed()
async def enable_rule(request: Request, who: Principal) -> Response:
    return json_response(await alerting().set_enabled(who, route_id(request), True))


@ROUTES.add("POST", "/api/v1/alerting/rules/{id}/disable", "Disable an alert rule", "alerting", "alerting:write")
@authed()
async def disable_rule(request: Request, who: Principal) -> Response:
    return json_response(await alerting().set_enabled(who, route_id(request), False))


@ROUTES.add("POST", "/api/v1/alerting/evaluate", "Evaluate the enabled rules now; returns what fired and resolved",
            "alerting", "alerting:write")
@authed()
async def evaluate(request: Request, who: Principal) -> Response:
    return json_response(await alerting().evaluate(who))


@ROUTES.add("GET", "/api/v1/alerting/history", "Alert history: firings and resolutions, newest first",
            "alerting", "alerting:read", query=PAGE)
@authed()
async def history(request: Request, who: Principal) -> Response:
    return json_response(await alerting().history(who, limit_param(query_one(request, "limit"), 20, 100),
                                                  query_one(request, "cursor")))
