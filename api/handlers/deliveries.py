"""Deliveries: every attempt across events, filtered by time range, outcome, endpoint and type."""

from __future__ import annotations

from blacksheep import Request, Response

from api.context import ctx
from api.handlers.events import ATTEMPT
from api.http import json_response, query_one
from api.routes import list_of
from api.routing import ROUTES, authed, route_id
from control.services.deliveries import DEFAULT_RANGE, MAX_LIMIT, MAX_OFFSET, OUTCOMES, RANGES, DeliveryService
from control.services.principal import Principal

PARAMS = ("range", "start", "end", "outcome", "endpoint_id", "event_type", "limit", "offset", "cursor")
QUERY = (
    ("range", {"type": "string", "enum": list(RANGES), "default": DEFAULT_RANGE}),
    ("start", {"type": "string", "format": "date-time"}),
    ("end", {"type": "string", "format": "date-time"}),
    ("outcome", {"type": "string", "enum": list(OUTCOMES)}),
    ("endpoint_id", {"type": "string", "format": "uuid"}),
    ("event_type", {"type": "string", "maxLength": 256}),
    ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50}),
    ("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
    ("cursor", {"type": "string"}),
)


def deliveries() -> DeliveryService:
    return ctx().service(DeliveryService)


@ROUTES.add("GET", "/api/v1/deliveries", "List delivery attempts (newest first) in a time range", "deliveries",
            "deliveries:read", query=QUERY, response=list_of(ATTEMPT))
@authed()
async def list_deliveries(request: Request, who: Principal) -> Response:
    return json_response(await deliveries().list(who, {p: query_one(request, p) for p in PARAMS}))


@ROUTES.add("GET", "/api/v1/deliveries/{id}", "Get one delivery attempt", "deliveries", "deliveries:read",
            response=ATTEMPT)
@authed()
async def get_delivery(request: Request, who: Principal) -> Response:
    return json_response(await deliveries().get(who, route_id(request)))
