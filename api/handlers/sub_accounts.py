"""Sub-accounts and their portal sessions (the workspace's side; the portal's is api/handlers/portal.py)."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.csrf import own_origin
from api.http import empty_response, json_response, query_one, read_json
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.services.principal import Principal
from control.services.sub_accounts import MAX_SESSION_S, MIN_SESSION_S, SubAccountService
from control.validate import limit_param

_STR: dict[str, Any] = {"type": "string"}
_TIME = nullable({"type": "string", "format": "date-time"})
BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "example": "Acme Customer Inc."},
    "subID": {"type": "string", "minLength": 1, "maxLength": 128, "example": "cust_abc123", "pattern": "^[!-~]+$",
              "description": "your own id for this customer; unique in the workspace; no spaces or control "
                             "characters (printable non-ASCII is accepted too)"},
    "metadata": {"type": "object", "description": "free-form, at most 8 KiB as JSON, no NUL characters",
                 "propertyNames": {"pattern": "^[^\\x00]*$"},
                 "additionalProperties": {"not": {"type": "string", "pattern": "\\x00"}},
                 "example": {"tier": "enterprise"}}}}
SUB_ACCOUNT = ROUTES.component("SubAccount", {
    "type": "object", "required": ["id", "name", "subID", "metadata", "active", "createdAt", "updatedAt",
                                   "deactivatedAt"],
    "properties": {"id": _STR, "name": _STR, "subID": _STR, "metadata": {"type": "object"},
                   "active": {"type": "boolean"}, "createdAt": _STR, "updatedAt": _STR, "deactivatedAt": _TIME}})
SESSION_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "returnURL": {"type": "string", "example": "https://app.example.com/integrations"},
    "ttlSeconds": {"type": "integer", "minimum": MIN_SESSION_S, "maximum": MAX_SESSION_S, "example": 600,
                   "description": "the session's idle window, slid forward on each request (default 3600)"}}}
SESSION = ROUTES.component("PortalSession", {
    "type": "object", "required": ["id", "subAccountId", "status", "ttlSeconds", "createdAt"],
    "properties": {"id": _STR, "subAccountId": _STR,
                   "status": {"type": "string", "enum": ["pending", "active", "expired", "revoked"]},
                   "returnURL": nullable(_STR), "ttlSeconds": {"type": "integer"}, "createdAt": _STR,
                   "exchangedAt": _TIME, "lastSeenAt": _TIME, "expiresAt": _TIME, "revokedAt": _TIME}})


def service() -> SubAccountService:
    return ctx().service(SubAccountService)


@ROUTES.add("POST", "/api/v1/sub-accounts", "Create a sub-account", "sub-accounts", "sub-accounts:write", 201,
            body={**BODY, "required": ["name", "subID"]}, response=SUB_ACCOUNT, responses={409: "subID taken"})
@authed()
async def create_sub_account(request: Request, who: Principal) -> Response:
    return json_response(await service().create(who, await read_json(request, ctx().max_body)), 201)


@ROUTES.add("GET", "/api/v1/sub-accounts", "List sub-accounts", "sub-accounts", "sub-accounts:read", query=PAGE,
            response=list_of(SUB_ACCOUNT))
@authed()
async def list_sub_accounts(request: Request, who: Principal) -> Response:
    return json_response(await service().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                              query_one(request, "cursor")))


@ROUTES.add("GET", "/api/v1/sub-accounts/{id}", "Get a sub-account", "sub-accounts", "sub-accounts:read",
            response=SUB_ACCOUNT)
@authed()
async def get_sub_account(request: Request, who: Principal) -> Response:
    return json_response(await service().get(who, route_id(request)))


@ROUTES.add("PATCH", "/api/v1/sub-accounts/{id}", "Update a sub-account", "sub-accounts", "sub-accounts:write",
            body=BODY, response=SUB_ACCOUNT, responses={409: "subID taken"})
@authed()
async def update_sub_account(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await service().update(who, route_id(request), body))


@ROUTES.add("DELETE", "/api/v1/sub-accounts/{id}",
            "Deactivate a sub-account (its new events are refused, history stays, sessions end)",
            "sub-accounts", "sub-accounts:write", 204)
@authed()
async def deactivate_sub_account(request: Request, who: Principal) -> Response:
    await service().deactivate(who, route_id(request))
    return empty_response(204)


@ROUTES.add("POST", "/api/v1/sub-accounts/{id}/sessions", "Mint a portal URL with a one-time exchange token",
            "sub-accounts", "sub-accounts:write", 201, body=SESSION_BODY,
            response={"type": "object", "required": ["url", "session"],
                      "properties": {"url": _STR, "session": SESSION}},
            responses={409: "The sub-account is deactivated"})
@authed()
async def create_portal_session(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body, optional=True)
    origin = own_origin(request, ctx().settings.section("auth")["public_url"]) or ""
    return json_response(await service().create_session(who, route_id(request), body, origin), 201)


@ROUTES.add("GET", "/api/v1/sub-accounts/{id}/sessions", "List a sub-account's portal sessions", "sub-accounts",
            "sub-accounts:read", query=PAGE, response=list_of(SESSION))
@authed()
async def list_portal_sessions(request: Request, who: Principal) -> Response:
    return json_response(await service().list_sessions(
        who, route_id(request), limit_param(query_one(request, "limit"), 20, 100), query_one(request, "cursor")))


@ROUTES.add("DELETE", "/api/v1/sub-accounts/{id}/sessions/{sessionId}", "Revoke one portal session",
            "sub-accounts", "sub-accounts:write", 204)
@authed()
async def revoke_portal_session(request: Request, who: Principal) -> Response:
    await service().revoke_session(who, route_id(request), route_id(request, "sessionId"))
    return empty_response(204)


@ROUTES.add("DELETE", "/api/v1/sub-accounts/{id}/sessions", "Revoke every portal session of a sub-account",
            "sub-accounts", "sub-accounts:write", response={"type": "object", "required": ["revoked"],
                                                            "properties": {"revoked": {"type": "integer"}}})
@authed()
async def revoke_portal_sessions(request: Request, who: Principal) -> Response:
    return json_response({"revoked": await service().revoke_sessions(who, route_id(request))})
