"""Connectors: named alert channels (Slack, Discord, Teams, e-mail, webhook, PagerDuty)."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.handlers.events import HEADERS_SCHEMA, URL_SCHEMA
from api.http import empty_response, json_response, query_one, read_json
from api.routes import nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.policy.alert_payloads import CONNECTOR_REQUIRED, SEVERITIES, SMTP_SECURITY, TYPES
from control.policy.alert_rules import MAX_TEMPLATE
from control.services.connectors import NOTIFY_KINDS, ConnectorService
from control.services.principal import Principal
from control.validate import limit_param

# What control/policy/alert_payloads.py checks, per channel type (shared with alert rule actions).
_NON_BLANK = "\\S"
TEMPLATE_TEXT: dict[str, Any] = {"type": "string", "maxLength": MAX_TEMPLATE,
                                 "description": "a template: {{.name}} placeholders are replaced"}
EMAIL: dict[str, Any] = {"type": "string", "maxLength": 320, "pattern": "^[^@\\s]{1,64}@[^@\\s]{1,255}$",
                         "example": "ops@example.com"}


def _text(max_len: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_len}


_URL = {**URL_SCHEMA, "example": "https://hooks.slack.com/services/T000/B000/XXXX"}
# Every setting of every type; a type takes only its own (others are refused).
SETTINGS: dict[str, dict[str, Any]] = {
    "slack": {"webhookUrl": _URL, "channel": _text(256), "username": _text(256), "iconEmoji": _text(64)},
    "discord": {"webhookUrl": _URL, "username": _text(80), "avatarUrl": URL_SCHEMA},
    "teams": {"webhookUrl": _URL},
    "webhook": {"webhookUrl": _URL, "headers": HEADERS_SCHEMA},
    "pagerduty": {"routingKey": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": _NON_BLANK},
                  "severity": {"type": "string", "enum": list(SEVERITIES)}, "source": _text(256)},
    "email": {"to": {"type": "array", "minItems": 1, "maxItems": 50, "items": EMAIL},
              "subject": TEMPLATE_TEXT,
              "smtpHost": {"type": "string", "minLength": 1, "maxLength": 253, "pattern": _NON_BLANK,
                           "description": "a literal internal address is refused unless private networks are allowed"},
              "smtpPort": {"type": "integer", "minimum": 1, "maximum": 65535}, "smtpUsername": _text(320),
              "smtpPassword": _text(1024), "fromEmail": EMAIL,
              "smtpSecurity": {"type": "string", "enum": list(SMTP_SECURITY)}},
}
SMTP_SETTINGS = ("smtpHost", "smtpPort", "smtpUsername", "smtpPassword", "fromEmail", "smtpSecurity")


def settings_schema(kind: str, required: tuple[str, ...] = (), leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """One type's settings: those in `required` must be there, the optional ones may be null (unset)."""
    fields = {**SETTINGS[kind], "message": TEMPLATE_TEXT}
    props = {k: (v if k in required else nullable(v)) for k, v in fields.items() if k not in leave_out}
    return {"type": "object", "additionalProperties": False, "properties": props,
            **({"required": list(required)} if required else {})}


TEMPLATE: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "title": nullable(TEMPLATE_TEXT), "text": nullable(TEMPLATE_TEXT),
    "color": nullable({"type": "string", "pattern": "^#?[0-9A-Fa-f]{6}$", "example": "#ba5b38"})}}
NOTIFY: dict[str, Any] = {"type": "array", "maxItems": 2 * len(NOTIFY_KINDS),
                          "items": {"type": "string", "enum": list(NOTIFY_KINDS)},
                          "description": "delivery notices this connector sends (an email connector needs config.to)"}
_NAME = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": _NON_BLANK, "example": "prod-slack-alerts"}
_CREATE_ONLY: dict[str, Any] = {"name": _NAME, "type": {"type": "string", "enum": list(TYPES)}}
CONNECTOR_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "config": {"type": "object", "description": "the type's settings (merged into the stored ones; null removes "
                                                "one; a masked secret sent back as read keeps it)",
               "anyOf": [settings_schema(kind) for kind in TYPES]},
    "template": nullable(TEMPLATE), "notify": nullable(NOTIFY)},
    "description": "name and type cannot change (the API also takes them when they repeat the current ones)",
    "example": {"config": {"channel": "#new-channel"}}}
# Create: the settings the type needs are required, per type (the branches only tie config to type).
CREATE_CONNECTOR_BODY: dict[str, Any] = {
    "type": "object", "required": ["name", "type", "config"], "additionalProperties": False,
    "properties": {**_CREATE_ONLY, **CONNECTOR_BODY["properties"], "config": {"type": "object"}},
    "oneOf": [{"title": kind, "properties": {"type": {"type": "string", "enum": [kind]},
                                             "config": settings_schema(kind, CONNECTOR_REQUIRED[kind])}}
              for kind in TYPES],
    "example": {"name": "prod-slack-alerts", "type": "slack",
                "config": {"webhookUrl": "https://hooks.slack.com/services/T000/B000/XXXX",
                           "channel": "#webhook-alerts", "username": "Mittr Bot", "iconEmoji": ":bell:"},
                "template": {"title": "{{.event_type}}", "text": "Delivery {{.status}}: {{.message}}",
                             "color": "#ba5b38"}}}


def connectors() -> ConnectorService:
    return ctx().service(ConnectorService)


@ROUTES.add("POST", "/api/v1/connectors", "Create a connector", "connectors", "connectors:write", 201,
            body=CREATE_CONNECTOR_BODY,
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
