"""The route table: one declaration serves BlackSheep's router and the OpenAPI document alike,
so the document cannot drift from the routes."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from blacksheep import Request, Response

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    scope: str | None            # None = public (no API key)
    status: int = 200
    body: dict[str, Any] | None = None        # JSON schema of the request body
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    headers: tuple[tuple[str, bool], ...] = ()  # (name, required)
    responses: dict[int, str] = field(default_factory=dict)


@dataclass
class RouteTable:
    routes: list[Route] = field(default_factory=list)

    def add(self, method: str, path: str, summary: str, tag: str, scope: str | None, status: int = 200,
            body: dict[str, Any] | None = None, query: tuple[tuple[str, dict[str, Any]], ...] = (),
            headers: tuple[tuple[str, bool], ...] = (),
            responses: dict[int, str] | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.routes.append(Route(method, path, fn, summary, tag, scope, status, body, query, headers,
                                     responses or {}))
            return fn
        return register


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
}
_PARAM = re.compile(r"\{([^}]+)\}")
_ERROR_TEXT = {400: "Invalid request", 401: "Missing or invalid API key", 403: "Scope missing",
               404: "Not found", 409: "Conflict", 413: "Body too large", 429: "Rate limited"}


def openapi_document(table: RouteTable, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for r in table.routes:
        params: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _PARAM.findall(r.path)]
        params += [{"name": n, "in": "query", "required": False, "schema": s} for n, s in r.query]
        params += [{"name": n, "in": "header", "required": req, "schema": {"type": "string"}}
                   for n, req in r.headers]
        responses: dict[str, Any] = {
            str(r.status): {"description": "Success",
                            "content": {"application/json": {"schema": {"type": "object"}}}}
            if r.status != 204 else {"description": "No content"}}
        codes = set(r.responses) | {400}
        if r.scope is not None:
            codes |= {401, 403, 429}
        if _PARAM.search(r.path):
            codes.add(404)
        for code in sorted(codes):
            responses[str(code)] = {
                "description": r.responses.get(code, _ERROR_TEXT.get(code, "Error")),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        op: dict[str, Any] = {"summary": r.summary, "tags": [r.tag], "parameters": params,
                              "responses": responses,
                              "operationId": f"{r.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', r.path)}"}
        if r.scope is None:
            op["security"] = []
        if r.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": r.body}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Mittr API", "version": version,
                 "description": "Self-hosted webhook delivery. Errors are {error, code}."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "mittr_session"},
            },
        },
        "security": [{"apiKey": []}, {"session": []}],
    }


__all__ = ["Request", "Route", "RouteTable", "openapi_document"]
