"""Alerting: rules over delivery health (CRUD, enable/disable), evaluation on demand, history."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.handlers.connectors import SMTP_SETTINGS, settings_schema
from api.http import empty_response, json_response, query_one, read_json
from api.routes import nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.policy.alert_payloads import REQUIRED, SECRET_FIELDS, TYPES
from control.policy.alert_rules import METRICS, OPERATORS
from control.services.alerting import AlertingService
from control.services.principal import Principal
from control.validate import limit_param

# What control/policy/alert_rules.py and control/services/alerting.py check. Durations: a window
# is whole minutes from 1m to 7d (the API also takes seconds that are whole minutes, e.g. 300s);
# a cooldown is 0 s to 7 d.
_MINUTES = "([1-9][0-9]{0,3}|100[0-7][0-9]|10080)m"
_HOURS = "([1-9][0-9]?|1[0-5][0-9]|16[0-8])h"
_SECONDS = "(0|[1-9][0-9]{0,4}|[1-5][0-9]{5}|60[0-3][0-9]{3}|604[0-7][0-9]{2}|604800)s"
_COOLDOWN = f"^({_SECONDS}|(0|{_MINUTES[:-1]})m|(0|{_HOURS[:-1]})h|[0-7]d)$"
CONDITION: dict[str, Any] = {"type": "object", "required": ["metric", "operator", "value", "window"],
                             "additionalProperties": False, "properties": {
    "metric": {"type": "string", "enum": list(METRICS)},
    "operator": {"type": "string", "enum": list(OPERATORS)},
    "value": {"type": "number", "example": 0.1},
    "window": {"type": "string", "pattern": f"^({_MINUTES}|{_HOURS}|[1-7]d)$", "example": "5m"}}}
_INLINE_LEAVE_OUT: dict[str, tuple[str, ...]] = {"email": SMTP_SETTINGS}   # SMTP belongs on a connector
_OVERRIDES: dict[str, Any] = {k: v for kind in TYPES for k, v in settings_schema(kind)["properties"].items()
                              if k not in SECRET_FIELDS and k not in SMTP_SETTINGS}
ACTION: dict[str, Any] = {"description": "Inline settings of a type, or `connector` naming one (with non-secret "
                                         "overrides of its type)", "oneOf": [
    *({**settings_schema(kind, ("type", *REQUIRED[kind]), _INLINE_LEAVE_OUT.get(kind, ())), "title": kind,
       "properties": {"type": {"type": "string", "enum": [kind]},
                      **settings_schema(kind, REQUIRED[kind], _INLINE_LEAVE_OUT.get(kind, ()))["properties"]}}
      for kind in TYPES),
    {"title": "connector", "type": "object", "required": ["connector"], "additionalProperties": False,
     "properties": {"connector": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "\\S",
                                  "description": "an existing connector's name"},
                    "type": {"type": "string", "enum": list(TYPES), "description": "the connector's type"},
                    **_OVERRIDES}}],
    "example": {"type": "slack", "webhookUrl": "https://hooks.slack.com/services/T000/B000/XXXX",
                "channel": "#alerts", "message": "Failure rate is {{.value}}% (threshold: {{.threshold}}%)"}}
RULE_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "\\S", "example": "High failure rate"},
    "description": nullable({"type": "string", "maxLength": 2000}),
    "enabled": nullable({"type": "boolean", "default": True}),
    "condition": nullable(CONDITION),
    "action": nullable(ACTION),
    "cooldown": nullable({"type": "string", "pattern": _COOLDOWN, "default": "15m", "example": "15m"}),
    "endpointId": nullable({"type": "string", "format": "uuid", "description": "one of your endpoints"})}}
CREATE_RULE_BODY: dict[str, Any] = {**RULE_BODY, "required": ["name", "condition", "action"], "properties": {
    **RULE_BODY["properties"], "condition": CONDITION, "action": ACTION},
    "example": {"name": "High failure rate", "description": "Alert when failure rate exceeds 10%", "enabled": True,
                "condition": {"metric": "failure_rate", "operator": "gt", "value": 0.1, "window": "5m"},
                "action": ACTION["example"], "cooldown": "15m"}}


def alerting() -> AlertingService:
    return ctx().service(AlertingService)


@ROUTES.add("POST", "/api/v1/alerting/rules", "Create an alert rule", "alerting", "alerting:write", 201,
            body=CREATE_RULE_BODY)
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
