"""Metrics: rate-limit figures (API keys and endpoints) and the Prometheus exposition."""

from __future__ import annotations

import hmac

from blacksheep import Content, Request, Response

from api.context import ctx
from api.http import header, json_response
from api.routes import nullable
from api.routing import ROUTES, authed, route_id
from control import metrics
from control.errors import Unauthorized
from control.services.principal import Principal
from control.services.ratelimit import ApiRateLimiter
from control.services.stats import StatsService

_TOKENS = nullable({"type": "number", "description": "tokens in the bucket now (null: unlimited or unknown)"})
KEY_LIMIT = ROUTES.component("KeyRateLimit", {
    "type": "object", "required": ["keyId", "name", "keyPrefix", "limitPerSec", "tokens", "throttled"],
    "properties": {"keyId": {"type": "string"}, "name": {"type": "string"}, "keyPrefix": {"type": "string"},
                   "limitPerSec": {"type": "integer", "description": "0 = unlimited"}, "tokens": _TOKENS,
                   "throttled": nullable({"type": "integer", "description": "requests refused (429) by every API "
                                                                            "worker; null: unlimited"})}})
ENDPOINT_LIMIT = ROUTES.component("EndpointRateLimit", {
    "type": "object",
    "required": ["endpointId", "url", "limitPerSec", "tokens", "throttled", "circuitState", "reportedAt"],
    "properties": {"endpointId": {"type": "string"}, "url": {"type": "string"},
                   "limitPerSec": {"type": "integer", "description": "rateLimitPerSec; 0 = unlimited"},
                   "tokens": _TOKENS,
                   "throttled": nullable({"type": "integer", "description": "sends made to wait, since the "
                                                                            "shard started"}),
                   "circuitState": {"type": "string", "enum": ["closed", "open", "half_open"]},
                   "reportedAt": nullable({"type": "string", "format": "date-time"})}})
RATE_LIMITS: dict[str, object] = {"type": "object", "required": ["apiKeys", "endpoints"], "properties": {
    "apiKeys": {"type": "array", "items": KEY_LIMIT}, "endpoints": {"type": "array", "items": ENDPOINT_LIMIT}}}


def stats() -> StatsService:
    return ctx().service(StatsService)


@ROUTES.add("GET", "/api/v1/metrics/rate-limits", "Rate limits: configured, current tokens, throttled",
            "metrics", "metrics:read", response=RATE_LIMITS)
@authed()
async def rate_limits(request: Request, who: Principal) -> Response:
    # this worker's refusals not yet reported go in first, so that they are in the figures it answers
    await ctx().service(ApiRateLimiter).report_refusals()
    return json_response(await stats().rate_limits(who))


@ROUTES.add("GET", "/api/v1/metrics/rate-limits/endpoint/{id}", "Rate limit of one endpoint", "metrics",
            "metrics:read", response=ENDPOINT_LIMIT)
@authed()
async def endpoint_rate_limit(request: Request, who: Principal) -> Response:
    return json_response(await stats().endpoint_rate_limit(who, route_id(request)))


async def prometheus(request: Request) -> Response:
    """GET /metrics: Prometheus text exposition; with metrics.token set, only for `Bearer <token>`."""
    token = str(ctx().settings.section("metrics")["token"])
    if token:
        given = header(request, b"authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("missing or invalid metrics token", headers={"WWW-Authenticate": "Bearer"})
    body = metrics.exposition(await stats().database_figures())
    return Response(200, None, Content(metrics.CONTENT_TYPE.encode(), body))
