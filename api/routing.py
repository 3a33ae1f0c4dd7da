"""Shared by every handler module: the one route table, authentication with scopes, small helpers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.routes import PERMISSION_ATTR, Permission, RouteTable
from control.errors import ApiError, RateLimited, Unavailable
from control.services.plan_limits import PlanLimits
from control.services.principal import Principal
from control.services.ratelimit import ApiRateLimiter
from control.store.db import DATABASE_DOWN

log = logging.getLogger("mittr.api")
ROUTES = RouteTable()
PAGE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("limit", {"type": "integer", "minimum": 1, "maximum": 100}), ("cursor", {"type": "string"}))

Authed = Callable[[Request, Principal], Awaitable[Response]]


def authed(scope: str | None = None) -> Callable[[Authed], Callable[[Request], Awaitable[Response]]]:
    """Authenticate, take one request from the key's rate limit, check the permission, then call
    the handler with the caller's Principal. Every response after authentication, success or error,
    carries the X-RateLimit-* headers; an exhausted key gets 429 RATE_LIMITED with Retry-After.

    Write `@authed()` under `@ROUTES.add(...)`: the permission is the one the route declares, bound
    when the route is registered. `@authed("x:read")` still works, and ROUTES.add refuses (at
    import) a route whose permission differs from it. A handler never registered fails closed."""
    def wrap(fn: Authed) -> Callable[[Request], Awaitable[Response]]:
        permission = Permission(scope)

        # No functools.wraps: BlackSheep binds parameters from the signature it sees, and the
        # wrapped handler's `who` must not look like a body parameter.
        async def handler(request: Request) -> Response:
            required = permission.value
            if required is None:
                raise RuntimeError(f"{fn.__name__}: @authed() handler used without a ROUTES.add declaration")
            who = await ctx().principal(request)
            return await limited(request, who, fn, required)
        handler.__name__ = fn.__name__
        handler.__doc__ = fn.__doc__
        setattr(handler, PERMISSION_ATTR, permission)
        return handler
    return wrap


async def limited(request: Request, who: Principal, fn: Authed, required: str | None) -> Response:
    """Call `fn` for an authenticated caller: one request from its rate limit (bucket: the key,
    person or session), the permission checked (None: the route admits `who` by itself), errors
    in the API's shape, X-RateLimit-* headers on every answer."""
    bucket = who.key_id or who.user_id or who.session_id or who.client_id
    verdict = await ctx().service(ApiRateLimiter).take(bucket, who.rate_limit)
    limits = verdict.headers() if verdict is not None else {}
    try:
        if verdict is not None and not verdict.allowed:
            raise RateLimited(f"rate limit of {verdict.limit} requests per second exceeded",
                              headers={"Retry-After": str(verdict.retry_after)})
        if required is not None:
            who.require(required)
            await ctx().service(PlanLimits).gate(who.client_id, required, request.method)
        response = await fn(request, who)
    except ApiError as exc:
        exc.headers = {**limits, **exc.headers}
        raise
    except DATABASE_DOWN as exc:
        log.warning("database unavailable", extra={"path": request.path, "error": str(exc)})
        raise Unavailable(limits) from exc
    except Exception as exc:
        log.exception("unhandled error", extra={"path": request.path})
        raise ApiError("internal server error", code="INTERNAL", status=500, headers=limits) from exc
    for name, value in limits.items():
        response.add_header(name.encode(), value.encode())
    return response


def route_id(request: Request, name: str = "id") -> str:
    return str(request.route_values[name])
