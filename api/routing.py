"""Shared by every handler module: the one route table, authentication with scopes, small helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.routes import RouteTable
from control.services.principal import Principal

ROUTES = RouteTable()
PAGE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("limit", {"type": "integer", "minimum": 1, "maximum": 100}), ("cursor", {"type": "string"}))

Authed = Callable[[Request, Principal], Awaitable[Response]]


def authed(scope: str) -> Callable[[Authed], Callable[[Request], Awaitable[Response]]]:
    """Authenticate, check the scope, then call the handler with the caller's Principal."""
    def wrap(fn: Authed) -> Callable[[Request], Awaitable[Response]]:
        # No functools.wraps: BlackSheep binds parameters from the signature it sees, and the
        # wrapped handler's `who` must not look like a body parameter.
        async def handler(request: Request) -> Response:
            who = await ctx().principal(request)
            who.require(scope)
            return await fn(request, who)
        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        return handler
    return wrap


def route_id(request: Request, name: str = "id") -> str:
    return str(request.route_values[name])
