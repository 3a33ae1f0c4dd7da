"""Account: who am I, finishing onboarding, the plan's limits (entitlements), egress addresses.

All four are the `account` family: every member reads them (viewers included); completing
onboarding is a write (admins and editors, keys with `account:write`).
"""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import json_response, read_json
from api.routes import nullable
from api.routing import ROUTES, authed
from control.policy.access import ROLES
from control.policy.plans import FEATURES, camel
from control.services.account import COMPANY_NAME_MAX, AccountInfoService
from control.services.principal import Principal

_STR = {"type": "string"}
_ID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_LIMIT = nullable({"type": "integer", "minimum": 0, "description": "null = unlimited"})
_ROLE = {"type": "string", "enum": list(ROLES)}

WORKSPACE = ROUTES.component("AccountWorkspace", {
    "type": "object", "required": ["id", "name", "onboarded", "planId", "createdAt"],
    "properties": {"id": _ID, "name": _STR, "onboarded": {"type": "boolean"}, "planId": _STR, "createdAt": _TIME}})
ME = ROUTES.component("AccountMe", {
    "type": "object", "required": ["workspace", "onboarding"],
    "description": "A person gets user, role and memberships; an API key gets apiKey.",
    "properties": {
        "user": {"type": "object", "required": ["id", "email", "name", "emailVerified"], "properties": {
            "id": _ID, "email": _STR, "name": _STR, "emailVerified": {"type": "boolean"}}},
        "apiKey": {"type": "object", "required": ["id", "name", "keyPrefix", "scopes", "projectId", "expiresAt"],
                   "properties": {"id": _ID, "name": _STR, "keyPrefix": _STR,
                                  "scopes": {"type": "array", "items": _STR,
                                             "description": "empty = every scope"},
                                  "projectId": nullable(_ID), "expiresAt": nullable(_TIME)}},
        "workspace": WORKSPACE,
        "role": _ROLE,
        "onboarding": {"type": "object", "required": ["completed", "completedAt"], "properties": {
            "completed": {"type": "boolean"}, "completedAt": nullable(_TIME)}},
        "memberships": {"type": "array", "description": "the person's other workspaces", "items": {
            "type": "object", "required": ["id", "name", "role"],
            "properties": {"id": _ID, "name": _STR, "role": _ROLE}}}}})
ENTITLEMENTS = ROUTES.component("Entitlements", {
    "type": "object",
    "required": ["planId", "planName", "monthlyEventQuota", "endpoints", "maxRateLimitPerSec", "retentionDays",
                 "features", "usage"],
    "properties": {
        "planId": _STR, "planName": _STR, "monthlyEventQuota": _LIMIT, "endpoints": _LIMIT,
        "maxRateLimitPerSec": _LIMIT, "retentionDays": _LIMIT,
        "features": {"type": "object", "required": [camel(f) for f in FEATURES],
                     "properties": {camel(f): {"type": "boolean"} for f in FEATURES}},
        "usage": {"type": "object", "required": ["monthlyEvents", "endpoints"], "properties": {
            "monthlyEvents": {"type": "integer", "minimum": 0, "description": "accepted this month (UTC)"},
            "endpoints": {"type": "integer", "minimum": 0}}}}})
EGRESS = ROUTES.component("EgressIps", {
    "type": "object", "required": ["ips"], "properties": {"ips": {"type": "array", "items": _STR}}})
ONBOARDING_BODY: dict[str, Any] = {"type": "object", "required": ["companyName"], "properties": {
    "companyName": {"type": "string", "minLength": 1, "maxLength": COMPANY_NAME_MAX, "pattern": r"\S"}}}


def account() -> AccountInfoService:
    return ctx().service(AccountInfoService)


@ROUTES.add("GET", "/api/v1/me", "Who is calling: the person (or API key) and the workspace", "account",
            "account:read", response=ME)
@authed("account:read")
async def get_me(request: Request, who: Principal) -> Response:
    return json_response(await account().me(who))


@ROUTES.add("POST", "/api/v1/me/onboarding-complete", "Name the workspace and finish onboarding", "account",
            "account:write", body=ONBOARDING_BODY, response=WORKSPACE,
            responses={403: "Role or scope missing, or the caller is scoped to a project"})
@authed("account:write")
async def complete_onboarding(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await account().complete_onboarding(who, body))


@ROUTES.add("GET", "/api/v1/entitlements", "The plan's limits and features, with this month's usage", "account",
            "account:read", response=ENTITLEMENTS)
@authed("account:read")
async def get_entitlements(request: Request, who: Principal) -> Response:
    return json_response(await account().entitlements(who))


@ROUTES.add("GET", "/api/v1/egress-ips", "The addresses deliveries come from (for receivers' allowlists)",
            "account", "account:read", response=EGRESS)
@authed("account:read")
async def get_egress_ips(request: Request, who: Principal) -> Response:
    return json_response(account().egress())
