"""API keys: create (the raw key shown once), list, delete."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import empty_response, json_response, query_one, read_json
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.policy.access import ALL_SCOPES
from control.policy.key_grants import MAX_SCOPES
from control.services.api_keys import MAX_NAME, MAX_RATE_LIMIT, ApiKeyService
from control.services.principal import Principal
from control.validate import limit_param

_SCOPES = {"type": "array", "minItems": 1, "maxItems": MAX_SCOPES,
           "items": {"type": "string", "enum": list(ALL_SCOPES)}}
KEY_BODY: dict[str, Any] = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": r"\S"},
    "scopes": _SCOPES,
    "rateLimit": nullable({"type": "integer", "minimum": 0, "maximum": MAX_RATE_LIMIT}),
    "expiresAt": nullable({"type": "string", "format": "date-time"}),
    "projectId": nullable({"type": "string", "format": "uuid"})}}
_KEY_PROPS: dict[str, Any] = {
    "id": {"type": "string"}, "name": {"type": "string"}, "keyPrefix": {"type": "string"},
    "scopes": {"type": "array", "items": {"type": "string"}},
    "rateLimit": nullable({"type": "integer"}), "expiresAt": nullable({"type": "string"}),
    "projectId": nullable({"type": "string"}), "isActive": {"type": "boolean"}, "createdAt": {"type": "string"}}
API_KEY = ROUTES.component("ApiKey", {"type": "object", "required": sorted(_KEY_PROPS), "properties": _KEY_PROPS})
CREATED_KEY = {"type": "object", "required": [*sorted(_KEY_PROPS), "key"],
               "properties": {**_KEY_PROPS, "key": {"type": "string", "description": "The key; shown only once"}}}


def api_keys() -> ApiKeyService:
    return ctx().service(ApiKeyService)


@ROUTES.add("POST", "/api/v1/api-keys", "Create an API key (the key itself is in this answer only)", "api-keys",
            "api-keys:write", 201, body=KEY_BODY, response=CREATED_KEY,
            responses={403: "Scope missing, or a scope, project or expiry the caller does not hold itself",
                       404: "Unknown projectId (or X-Project-ID)"})
@authed()
async def create_api_key(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await api_keys().create(who, body), 201)


@ROUTES.add("GET", "/api/v1/api-keys", "List API keys (never the key itself)", "api-keys", "api-keys:read",
            query=PAGE, response=list_of(API_KEY))
@authed()
async def list_api_keys(request: Request, who: Principal) -> Response:
    out = await api_keys().list(who, limit_param(query_one(request, "limit"), 20, 100), query_one(request, "cursor"))
    return json_response(out)


@ROUTES.add("DELETE", "/api/v1/api-keys/{id}", "Delete an API key (it stops working within a second)", "api-keys",
            "api-keys:write", 204, responses={403: "Scope missing, or the key holds rights the caller lacks"})
@authed()
async def delete_api_key(request: Request, who: Principal) -> Response:
    await api_keys().delete(who, route_id(request))
    return empty_response(204)
