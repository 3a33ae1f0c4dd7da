"""Usage: this calendar month's and past months' events, deliveries and attempts (family `usage`,
read by every member)."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.http import json_response, query_one
from api.routes import nullable
from api.routing import ROUTES, authed
from control.services.principal import Principal
from control.services.usage_report import MAX_MONTHS, UsageService, parse_months

_INT = {"type": "integer", "minimum": 0}
_TIME = {"type": "string", "format": "date-time"}
_MONTH_PROPS: dict[str, Any] = {
    "month": {"type": "string", "pattern": r"^\d{4}-\d{2}$"}, "periodStart": _TIME, "periodEnd": _TIME,
    "eventsAccepted": {**_INT, "description": "events accepted and counted against the quota"},
    "deliveries": {**_INT, "description": "deliveries that succeeded (analytics' delivered)"},
    "attempts": _INT, "successes": _INT, "failed": _INT, "deadLettered": _INT}
MONTH = ROUTES.component("UsageMonth", {"type": "object", "required": list(_MONTH_PROPS), "properties": _MONTH_PROPS})
CURRENT = ROUTES.component("UsageCurrent", {
    "type": "object", "required": [*_MONTH_PROPS, "planId", "quota", "remaining"],
    "properties": {**_MONTH_PROPS, "planId": {"type": "string"},
                   "quota": nullable({**_INT, "description": "monthly event quota in force; null = unlimited"}),
                   "remaining": nullable({**_INT, "description": "events left this month; null = unlimited"})}})
HISTORY = ROUTES.component("UsageHistory", {
    "type": "object", "required": ["months", "data"],
    "properties": {"months": _INT, "data": {"type": "array", "items": MONTH, "description": "oldest first"}}})


def usage() -> UsageService:
    return ctx().service(UsageService)


@ROUTES.add("GET", "/api/v1/usage/current", "This calendar month's usage (UTC) against the quota", "usage",
            "usage:read", response=CURRENT)
@authed()
async def usage_current(request: Request, who: Principal) -> Response:
    return json_response(await usage().current(who))


@ROUTES.add("GET", "/api/v1/usage/history", "Monthly usage totals, this month included, oldest first", "usage",
            "usage:read", query=(("months", {"type": "integer", "minimum": 1, "maximum": MAX_MONTHS}),),
            response=HISTORY)
@authed()
async def usage_history(request: Request, who: Principal) -> Response:
    return json_response(await usage().history(who, parse_months(query_one(request, "months"))))
