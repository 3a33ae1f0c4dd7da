"""Analytics: summary, outcomes, throughput, latency, failures and endpoint health, from rollups."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import json_response, query_one
from api.routes import nullable
from api.routing import ROUTES, authed
from control.services.analytics import AnalyticsService, Window, parse_window
from control.services.principal import Principal
from control.services.rollups import CATEGORIES

WINDOW: tuple[tuple[str, dict[str, Any]], ...] = (
    ("endpointId", {"type": "string", "format": "uuid"}),
    ("from", {"type": "string", "format": "date-time"}),
    ("to", {"type": "string", "format": "date-time"}))
Report = Callable[[AnalyticsService, Principal, Window], Awaitable[dict[str, Any]]]
_INT = {"type": "integer"}
_MS = nullable({"type": "integer", "description": "durationMs; null without attempts"})
_TIME = {"type": "string", "format": "date-time"}
_RATIO = nullable({"type": "number", "description": "0..1; null without attempts"})
LATENCY_PROPS: dict[str, Any] = {"count": _INT, "avgMs": nullable({"type": "number"}), "p50": _MS, "p95": _MS,
                                 "p99": _MS, "maxMs": _MS}
LATENCY = ROUTES.component("LatencyFigures", {"type": "object", "properties": LATENCY_PROPS})


def report_schema(props: dict[str, Any], point: dict[str, Any] | None = None) -> dict[str, Any]:
    """The window every report echoes, its own figures, and `data` (one item per bucket, or per endpoint)."""
    out: dict[str, Any] = {"from": _TIME, "to": _TIME, "granularity": {"type": "string", "enum": ["hour", "day"]},
                           "endpointId": nullable({"type": "string"}), **props}
    if point is not None:
        out["data"] = {"type": "array", "items": {"type": "object", "properties": point}}
    return {"type": "object", "properties": out}


def _route(name: str, summary: str, report: Report, response: dict[str, Any]) -> None:
    @ROUTES.add("GET", f"/api/v1/analytics/{name}", summary, "analytics", "analytics:read", query=WINDOW,
                response=response)
    @authed()
    async def handler(request: Request, who: Principal) -> Response:
        window = parse_window(query_one(request, "endpointId"), query_one(request, "from"),
                              query_one(request, "to"))
        return json_response(await report(ctx().service(AnalyticsService), who, window))
    handler.__name__ = f"analytics_{name.replace('-', '_')}"


_route("summary", "Top-line counts: sent, delivered, failed, dead-lettered", AnalyticsService.summary,
       report_schema({"sent": _INT, "delivered": _INT, "failed": _INT, "deadLettered": _INT, "attempts": _INT,
                      "successes": _INT, "timeouts": _INT, "successRate": _RATIO,
                      "avgLatencyMs": nullable({"type": "number"})}))
_route("outcomes", "Outcomes per bucket", AnalyticsService.outcomes,
       report_schema({}, {"timestamp": _TIME, "success": _INT, "failure": _INT, "timeout": _INT, "delivered": _INT,
                          "dead": _INT}))
_route("throughput", "Attempts and deliveries per second, per bucket", AnalyticsService.throughput,
       report_schema({}, {"timestamp": _TIME, "attempts": _INT, "delivered": _INT,
                          "attemptsPerSec": {"type": "number"}, "eventsPerSec": {"type": "number"}}))
_route("latency", "Attempt latency p50/p95/p99 per bucket", AnalyticsService.latency,
       report_schema({"overall": LATENCY}, {"timestamp": _TIME, **LATENCY_PROPS}))
_route("failures", "Failed attempts by category (timeout/4xx/5xx/dns/tls/refused/other)", AnalyticsService.failures,
       report_schema({"total": _INT, "categories": {"type": "object", "properties": dict.fromkeys(CATEGORIES, _INT)}},
                     {"timestamp": _TIME, "total": _INT, **dict.fromkeys(CATEGORIES, _INT)}))
_route("endpoint-health", "Per endpoint: delivery rate, p95 latency, circuit state", AnalyticsService.endpoint_health,
       report_schema({}, {"endpointId": {"type": "string"}, "url": {"type": "string"}, "status": {"type": "string"},
                          "circuitState": {"type": "string", "enum": ["closed", "open", "half_open"]},
                          "attempts": _INT, "successes": _INT, "failed": _INT, "delivered": _INT, "dead": _INT,
                          "deliveryRate": _RATIO, "p95LatencyMs": _MS}))
