"""SCIM v2 (RFC 7643/7644) for identity providers, and the admin API that issues their tokens.

/scim/v2/* authenticate with a workspace's SCIM token (`Authorization: Bearer mtscim_...`), answer
`application/scim+json`, and speak SCIM's error format (`urn:ietf:params:scim:api:messages:2.0:Error`,
status as a string, scimType) instead of the API's `{error, code}`: an IdP parses nothing else.
They share the API's rate limit. /api/v1/scim/tokens is a normal admin-only API family (`scim`),
behind the plan feature `scim`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from blacksheep import Content, Request, Response
from scim2_models import (
    Context,
    Error,
    ForbiddenException,
    InvalidValueException,
    ListResponse,
    NotFoundException,
    ResourceType,
    Schema,
    SCIMException,
)

from api.context import ctx
from api.handlers.auth import link_base
from api.http import empty_response, header, json_response, query_one, read_json
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, Authed, authed, limited, route_id
from control.errors import ApiError, Unavailable
from control.services.plan_limits import PlanLimits
from control.services.portal import bearer
from control.services.principal import Principal
from control.services.scim import (
    Query,
    ScimAuthenticator,
    ScimTokenService,
    ScimUserService,
    clamp_paging,
    search_query,
)
from control.services.scim_schema import (
    MAX_BODY_BYTES,
    MEDIA_TYPE,
    USER_SCHEMA,
    dump,
    service_provider_config,
    user_resource_type,
    user_schema,
)
from control.store.db import DATABASE_DOWN
from control.validate import limit_param

PREFIX = "/scim/v2"
TAG = "scim"
AUTH_HEADER = (("Authorization", True),)
UNAUTHORIZED = {401: "Missing, unknown or revoked SCIM token", 403: "The workspace's plan does not include SCIM",
                429: "Rate limited (see Retry-After)"}
SCIM_MEDIA = MEDIA_TYPE.decode()
SCIM_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["schemas", "status"],
    "description": "RFC 7644 §3.12: every /scim/v2 error, instead of the API's {error, code}",
    "properties": {"schemas": {"type": "array", "items": {"type": "string",
                                                          "enum": ["urn:ietf:params:scim:api:messages:2.0:Error"]}},
                   "status": {"type": "string", "example": "404"},
                   "scimType": {"type": "string", "example": "invalidFilter"}, "detail": {"type": "string"}}}
MAX_PARAM_CHARS = 1000
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="mittr-scim"'}
_STR: dict[str, Any] = {"type": "string"}
_TIME = nullable({"type": "string", "format": "date-time"})
SCIM_TOKEN = ROUTES.component("ScimToken", {
    "type": "object", "required": ["id", "name", "prefix", "createdAt", "active"],
    "properties": {"id": _STR, "name": _STR, "prefix": _STR, "createdBy": nullable(_STR), "createdAt": _STR,
                   "lastUsedAt": _TIME, "revokedAt": _TIME, "active": {"type": "boolean"}}})
TOKEN_BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["name"],
                              "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200,
                                                      "example": "Okta"}}}
SCIM_BODY: dict[str, Any] = {"type": "object", "description": "A SCIM User (RFC 7643 §4.1), application/scim+json"}
PATCH_BODY: dict[str, Any] = {"type": "object", "description": "A SCIM PatchOp (RFC 7644 §3.5.2)",
                              "required": ["schemas", "Operations"],
                              "properties": {"schemas": {"type": "array", "items": _STR},
                                             "Operations": {"type": "array", "items": {"type": "object"}}}}
SEARCH_BODY: dict[str, Any] = {"type": "object", "description": "A SCIM SearchRequest (RFC 7644 §3.4.3)"}
LIST_QUERY: tuple[tuple[str, dict[str, Any]], ...] = (
    ("filter", {"type": "string", "maxLength": MAX_PARAM_CHARS, "example": 'userName eq "ada@example.com"'}),
    ("startIndex", {"type": "integer"}), ("count", {"type": "integer"}),
    ("attributes", {"type": "string"}), ("excludedAttributes", {"type": "string"}))
ATTR_QUERY = LIST_QUERY[3:]


def tokens() -> ScimTokenService:
    return ctx().service(ScimTokenService)


def users() -> ScimUserService:
    return ctx().service(ScimUserService)


def scim_base(request: Request) -> str:
    """The SCIM base URL an IdP is given (and resources' meta.location): `auth.public_url`'s origin,
    else the address this server listens on, never the request's Host."""
    return link_base(request) + PREFIX


# --- the admin API ------------------------------------------------------------------------------

@ROUTES.add("POST", "/api/v1/scim/tokens", "Create a SCIM token for an identity provider (shown once)", TAG,
            "scim:write", 201, body=TOKEN_BODY,
            response={"allOf": [SCIM_TOKEN, {"type": "object", "required": ["token", "scimBaseUrl"],
                                             "properties": {"token": _STR, "scimBaseUrl": _STR}}]})
@authed()
async def create_token(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await tokens().create(who, body, scim_base(request)), 201)


@ROUTES.add("GET", "/api/v1/scim/tokens", "List the workspace's SCIM tokens (revoked ones too)", TAG, "scim:read",
            query=PAGE, response=list_of(SCIM_TOKEN))
@authed()
async def list_tokens(request: Request, who: Principal) -> Response:
    return json_response(await tokens().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                             query_one(request, "cursor")))


@ROUTES.add("DELETE", "/api/v1/scim/tokens/{id}", "Revoke a SCIM token (its next request answers 401)", TAG,
            "scim:write", 204)
@authed()
async def revoke_token(request: Request, who: Principal) -> Response:
    await tokens().revoke(who, route_id(request))
    return empty_response(204)


# --- /scim/v2 -------------------------------------------------------------------------------------

def scim_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return Response(status, extra, Content(MEDIA_TYPE, orjson.dumps(data)))


def scim_error(exc: SCIMException, headers: dict[str, str] | None = None) -> Response:
    return scim_response(dump(exc.to_error()), exc.status, headers)


def api_error_as_scim(exc: ApiError) -> Response:
    """An error raised by the shared machinery (bearer check, rate limit, body limit, JSON parsing,
    plan) in SCIM's shape, its headers (Retry-After, X-RateLimit-*) kept."""
    status, headers = exc.status, dict(exc.headers)
    scim_type: str | None = None
    if exc.code == "FEATURE_NOT_IN_PLAN":
        status = ForbiddenException.status
    elif status == 401:
        headers.update(WWW_AUTHENTICATE)
    elif status == 400:
        scim_type = "invalidSyntax" if exc.message.startswith("body:") else "invalidValue"
    return scim_response(dump(Error(status=status, scim_type=scim_type, detail=exc.message)), status, headers)


def scim_authed(fn: Authed) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate the SCIM token, check the plan, then run `fn` under the API's rate limit; every
    refusal in SCIM's error format."""
    async def inner(request: Request, who: Principal) -> Response:
        try:
            return await fn(request, who)
        except SCIMException as exc:
            return scim_error(exc)

    async def handler(request: Request) -> Response:
        try:
            who = await ctx().service(ScimAuthenticator).authenticate(
                bearer(header(request, b"authorization")), request.client_ip or None)
            await ctx().service(PlanLimits).require_feature(who.client_id, "scim")
            return await limited(request, who, inner, None)
        except SCIMException as exc:
            return scim_error(exc)
        except ApiError as exc:
            return api_error_as_scim(exc)
        except DATABASE_DOWN:
            return api_error_as_scim(Unavailable())
    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


async def scim_body(request: Request) -> Any:
    return await read_json(request, min(ctx().max_body, MAX_BODY_BYTES))


def _param(request: Request, name: str) -> str | None:
    value = query_one(request, name)
    if value is not None and len(value) > MAX_PARAM_CHARS:
        raise InvalidValueException(detail=f"{name}: longer than {MAX_PARAM_CHARS} characters")
    return value


def _int_param(request: Request, name: str) -> int | None:
    raw = _param(request, name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidValueException(detail=f"{name}: not an integer") from exc


def _names(request: Request, name: str) -> list[str] | None:
    raw = _param(request, name)
    names = [n.strip() for n in (raw or "").split(",") if n.strip()]
    return names or None


def list_query(request: Request) -> Query:
    start, count = clamp_paging(_int_param(request, "startIndex"), _int_param(request, "count"))
    return Query(_param(request, "filter"), start, count, _names(request, "attributes"),
                 _names(request, "excludedAttributes"))


def _listed(item: ResourceType | Schema) -> dict[str, Any]:
    """A discovery list: one resource type, or one schema, since Mittr serves Users only."""
    page = {"total_results": 1, "start_index": 1, "items_per_page": 1}
    if isinstance(item, ResourceType):
        return dump(ListResponse[ResourceType](**page, resources=[item]), Context.SEARCH_RESPONSE)
    return dump(ListResponse[Schema](**page, resources=[item]), Context.SEARCH_RESPONSE)


@ROUTES.add("GET", f"{PREFIX}/ServiceProviderConfig", "SCIM: what this service provider supports", TAG, None,
            headers=AUTH_HEADER, responses=UNAUTHORIZED)
@scim_authed
async def scim_service_provider_config(request: Request, who: Principal) -> Response:
    return scim_response(dump(service_provider_config(scim_base(request))))


@ROUTES.add("GET", f"{PREFIX}/ResourceTypes", "SCIM: resource types (User)", TAG, None, headers=AUTH_HEADER,
            responses=UNAUTHORIZED)
@scim_authed
async def scim_resource_types(request: Request, who: Principal) -> Response:
    return scim_response(_listed(user_resource_type(scim_base(request))))


@ROUTES.add("GET", f"{PREFIX}/ResourceTypes/{{id}}", "SCIM: one resource type", TAG, None, headers=AUTH_HEADER,
            responses={**UNAUTHORIZED, 404: "No such resource type"})
@scim_authed
async def scim_resource_type(request: Request, who: Principal) -> Response:
    if route_id(request) != "User":
        raise NotFoundException(detail=f"resource type {route_id(request)!r} not found")
    return scim_response(dump(user_resource_type(scim_base(request))))


@ROUTES.add("GET", f"{PREFIX}/Schemas", "SCIM: the schemas served (core User)", TAG, None, headers=AUTH_HEADER,
            responses=UNAUTHORIZED)
@scim_authed
async def scim_schemas(request: Request, who: Principal) -> Response:
    return scim_response(_listed(user_schema(scim_base(request))))


@ROUTES.add("GET", f"{PREFIX}/Schemas/{{id}}", "SCIM: one schema", TAG, None, headers=AUTH_HEADER,
            responses={**UNAUTHORIZED, 404: "No such schema"})
@scim_authed
async def scim_schema(request: Request, who: Principal) -> Response:
    if route_id(request) != USER_SCHEMA:
        raise NotFoundException(detail=f"schema {route_id(request)!r} not found")
    return scim_response(dump(user_schema(scim_base(request))))


@ROUTES.add("GET", f"{PREFIX}/Users", "SCIM: list or filter the workspace's members", TAG, None,
            query=LIST_QUERY, headers=AUTH_HEADER, responses=UNAUTHORIZED)
@scim_authed
async def scim_list_users(request: Request, who: Principal) -> Response:
    return scim_response(await users().search(who, list_query(request), scim_base(request)))


async def _search(request: Request, who: Principal) -> Response:
    query = search_query(await scim_body(request))
    return scim_response(await users().search(who, query, scim_base(request)))


@ROUTES.add("POST", f"{PREFIX}/Users/.search", "SCIM: search members (SearchRequest body)", TAG, None,
            body=SEARCH_BODY, headers=AUTH_HEADER, responses=UNAUTHORIZED)
@scim_authed
async def scim_search_users(request: Request, who: Principal) -> Response:
    return await _search(request, who)


@ROUTES.add("POST", f"{PREFIX}/.search", "SCIM: search every resource type (only Users exist)", TAG, None,
            body=SEARCH_BODY, headers=AUTH_HEADER, responses=UNAUTHORIZED)
@scim_authed
async def scim_search_all(request: Request, who: Principal) -> Response:
    return await _search(request, who)


@ROUTES.add("POST", f"{PREFIX}/Users", "SCIM: provision a member of the token's workspace", TAG, None, 201,
            body=SCIM_BODY, headers=AUTH_HEADER, responses={**UNAUTHORIZED, 409: "userName or member exists"})
@scim_authed
async def scim_create_user(request: Request, who: Principal) -> Response:
    created = await users().create(who, await scim_body(request), scim_base(request))
    return scim_response(created, 201, {"Location": created["meta"]["location"]})


@ROUTES.add("GET", f"{PREFIX}/Users/{{id}}", "SCIM: one member", TAG, None, query=ATTR_QUERY, headers=AUTH_HEADER,
            responses={**UNAUTHORIZED, 404: "Not a member of this workspace"})
@scim_authed
async def scim_get_user(request: Request, who: Principal) -> Response:
    return scim_response(await users().get(who, route_id(request), scim_base(request),
                                           _names(request, "attributes"), _names(request, "excludedAttributes")))


@ROUTES.add("PUT", f"{PREFIX}/Users/{{id}}", "SCIM: replace a member's attributes", TAG, None, body=SCIM_BODY,
            headers=AUTH_HEADER, responses={**UNAUTHORIZED, 404: "Not a member of this workspace"})
@scim_authed
async def scim_replace_user(request: Request, who: Principal) -> Response:
    return scim_response(await users().replace(who, route_id(request), await scim_body(request), scim_base(request)))


@ROUTES.add("PATCH", f"{PREFIX}/Users/{{id}}",
            "SCIM: change a member (active=false deactivates and ends their sessions)", TAG, None, body=PATCH_BODY,
            headers=AUTH_HEADER, responses={**UNAUTHORIZED, 404: "Not a member of this workspace"})
@scim_authed
async def scim_patch_user(request: Request, who: Principal) -> Response:
    return scim_response(await users().patch(who, route_id(request), await scim_body(request), scim_base(request)))


@ROUTES.add("DELETE", f"{PREFIX}/Users/{{id}}", "SCIM: remove a member from the workspace", TAG, None, 204,
            headers=AUTH_HEADER, responses={**UNAUTHORIZED, 404: "Not a member of this workspace"})
@scim_authed
async def scim_delete_user(request: Request, who: Principal) -> Response:
    await users().delete(who, route_id(request))
    return empty_response(204)


def scim_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document says what /scim/v2 really sends and takes: application/scim+json, and
    SCIM's error object for every error status (the route table documents the API's shapes)."""
    paths = {}
    for path, operations in document["paths"].items():
        if not is_scim_path(path):
            paths[path] = operations
            continue
        paths[path] = {method: _scim_operation(op) for method, op in operations.items()}
    schemas = {**document["components"]["schemas"], "ScimError": SCIM_ERROR_SCHEMA}
    return {**document, "paths": paths, "components": {**document["components"], "schemas": schemas}}


def _scim_operation(op: dict[str, Any]) -> dict[str, Any]:
    responses = {}
    for code, entry in op["responses"].items():
        content = entry.get("content")
        if content is not None:
            schema = content["application/json"]["schema"] if code.startswith("2") else {
                "$ref": "#/components/schemas/ScimError"}
            entry = {**entry, "content": {SCIM_MEDIA: {"schema": schema}}}
        responses[code] = entry
    out = {**op, "responses": responses}
    if "requestBody" in op:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        out["requestBody"] = {**op["requestBody"], "content": {SCIM_MEDIA: {"schema": schema},
                                                               "application/json": {"schema": schema}}}
    return out


def is_scim_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


# --- what no route answers under /scim/v2 -------------------------------------------------------

_PARAM = re.compile(r"\\\{[^}]+\\\}")
SCIM_ROUTES = [(r.method, re.compile("^" + _PARAM.sub("[^/]+", re.escape(r.path)) + "$"))
               for r in ROUTES.routes if r.path.startswith(PREFIX + "/")]


async def scim_not_found(request: Request) -> Response:
    """404, or 405 with Allow when the path exists for other methods, in SCIM's error format (an
    IdP, and scim2-tester, read nothing else)."""
    allowed = sorted({method for method, pattern in SCIM_ROUTES if pattern.match(request.path)})
    if allowed:
        error = Error(status=405, detail=f"{request.method} is not allowed here")
        return scim_response(dump(error), 405, {"Allow": ", ".join(allowed)})
    return scim_error(NotFoundException(detail=f"no SCIM resource at {request.path}"))


# (method, path, handler): added to the router after the routes, so only what they leave unanswered.
FALLBACK = tuple((method, f"{PREFIX}/*", scim_not_found) for method in ("GET", "POST", "PUT", "PATCH", "DELETE"))
