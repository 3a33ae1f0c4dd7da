"""The route table: one declaration serves BlackSheep's router and the OpenAPI document alike,
so the document cannot drift from the routes."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from blacksheep import Request, Response

Handler = Callable[..., Awaitable[Response]]
PERMISSION_ATTR = "mittr_permission"


class RouteError(ValueError):
    """A route whose declaration and handler disagree about its permission (raised at import)."""


@dataclass
class Permission:
    """The permission an `@authed` handler enforces: given there, or bound from its Route."""
    value: str | None = None


def bind_permission(handler: Handler, scope: str | None, where: str) -> None:
    """Make the handler enforce exactly the Route's permission: an `@authed()` handler takes it
    from here, an `@authed("x")` one must say the same, and a public route must not be `@authed`."""
    held: Permission | None = getattr(handler, PERMISSION_ATTR, None)
    if scope is None:
        if held is not None:
            raise RouteError(f"{where}: a public route (permission None) must not be @authed")
        return
    if held is None:
        raise RouteError(f"{where}: declares {scope!r} but its handler is not @authed(), so nothing checks it")
    if held.value is None:
        held.value = scope
    elif held.value != scope:
        raise RouteError(f"{where}: ROUTES.add declares {scope!r} but @authed checks {held.value!r}")


# A query parameter: (name, schema), or (name, schema, required) when the API refuses a request without it.
QueryParam = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], bool]
# A header parameter: (name, required), or (name, required, schema) when the API checks its value.
HeaderParam = tuple[str, bool] | tuple[str, bool, dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    scope: str | None            # the permission (`<family>:read|write`); None = public (no API key)
    status: int = 200
    body: dict[str, Any] | None = None        # JSON schema of the request body
    query: tuple[QueryParam, ...] = ()         # (name, schema) or (name, schema, required)
    headers: tuple[HeaderParam, ...] = ()      # (name, required) or (name, required, schema)
    responses: dict[int, str] = field(default_factory=dict)
    response: dict[str, Any] | None = None    # JSON schema of the success body (None: any object)
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)   # {name} -> schema (default string)


@dataclass
class RouteTable:
    routes: list[Route] = field(default_factory=list)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, method: str, path: str, summary: str, tag: str, scope: str | None, status: int = 200,
            body: dict[str, Any] | None = None, query: tuple[QueryParam, ...] = (),
            headers: tuple[HeaderParam, ...] = (),
            responses: dict[int, str] | None = None,
            response: dict[str, Any] | None = None,
            path_params: dict[str, dict[str, Any]] | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            bind_permission(fn, scope, f"{method} {path}")
            unknown = set(path_params or {}) - set(_PARAM.findall(path))
            if unknown:
                raise RouteError(f"{method} {path}: path_params names {sorted(unknown)}, not in the path")
            self.routes.append(Route(method, path, fn, summary, tag, scope, status, body, query, headers,
                                     responses or {}, response, dict(path_params or {})))
            return fn
        return register

    def component(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Name a schema in the document's components; returns the `$ref` to use in its place."""
        if self.schemas.get(name, schema) != schema:
            raise ValueError(f"schema {name!r} registered twice with different content")
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def list_of(item: dict[str, Any]) -> dict[str, Any]:
    """The guide's list shape: `{data: [...], pagination: {hasMore, cursor}}`."""
    return {"type": "object", "required": ["data", "pagination"], "properties": {
        "data": {"type": "array", "items": item},
        "pagination": {"type": "object", "required": ["hasMore", "cursor"], "properties": {
            "hasMore": {"type": "boolean"}, "cursor": nullable({"type": "string"})}}}}


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
}
_PARAM = re.compile(r"\{([^}]+)\}")
_ERROR_TEXT = {400: "Invalid request", 401: "Missing or invalid API key", 402: "Monthly message quota exceeded",
               403: "Scope missing", 404: "Not found", 409: "Conflict",
               413: "Body larger than api.max_body_bytes", 429: "Rate limited (see Retry-After)"}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests per second allowed for this API key",
                          "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the current window",
                              "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "Unix time (seconds) when the allowance is full again",
                          "schema": {"type": "integer"}},
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _responses(r: Route) -> dict[str, Any]:
    limited = r.scope is not None
    success: dict[str, Any] = {"description": "Success"}
    if r.status in (302, 303):        # a redirect: no body, the Location header says where
        success = {"description": "Redirect", "headers": {"Location": {"schema": {"type": "string"}}}}
    elif r.status != 204:
        success["content"] = {"application/json": {"schema": r.response or {"type": "object"}}}
    if limited:
        success["headers"] = {**success.get("headers", {}), **_RATE_HEADERS}
    out: dict[str, Any] = {str(r.status): success}
    codes = set(r.responses) | {400}
    if limited:
        codes |= {401, 403, 404, 429}     # 404 also answers an unknown X-Project-ID
    if r.body is not None:
        codes.add(413)
    if _PARAM.search(r.path):
        codes.add(404)
    for code in sorted(codes):
        text = _ERROR_TEXT.get(code, "Error")
        if code == 404 and limited:
            text = "Not found (also: unknown X-Project-ID)"
        entry: dict[str, Any] = {"description": r.responses.get(code, text),
                                 "content": {"application/json": {"schema": _ERROR_REF}}}
        if limited and code != 401:
            entry["headers"] = {**_RATE_HEADERS, **(_RETRY_AFTER if code == 429 else {})}
        out[str(code)] = entry
    return out


def openapi_document(table: RouteTable, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in table.routes:
        params: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": r.path_params.get(n, {"type": "string"})}
            for n in _PARAM.findall(r.path)]
        params += [{"name": p[0], "in": "query", "required": len(p) > 2 and bool(p[2]), "schema": p[1]}
                   for p in r.query]
        params += [{"name": h[0], "in": "header", "required": h[1],
                    "schema": h[2] if len(h) > 2 else {"type": "string"}} for h in r.headers]
        op: dict[str, Any] = {"summary": r.summary, "tags": [r.tag], "parameters": params,
                              "responses": _responses(r),
                              "operationId": f"{r.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', r.path)}"}
        if r.scope is None:
            op["security"] = []
        else:
            op["description"] = f"Requires the `{r.scope}` scope."
            op["x-permission"] = r.scope
        if r.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": r.body}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Mittr API", "version": version,
                 "description": "Self-hosted webhook delivery. Errors are {error, code}. Every response to "
                                "an authenticated request carries X-RateLimit-Limit/Remaining/Reset."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA, **table.schemas},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "mittr_session"},
            },
        },
        "security": [{"apiKey": []}, {"session": []}],
    }


__all__ = ["Permission", "Request", "Route", "RouteError", "RouteTable", "bind_permission", "list_of", "nullable",
           "openapi_document"]
