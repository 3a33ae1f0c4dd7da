"""Billing: plans, the subscription, invoices, checkout, proration preview, cancel/resume, undoing a
scheduled change and the provider's portal (family `billing`: every member reads, admins change)."""

from __future__ import annotations

import copy
from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.csrf import own_origin
from api.handlers.account import _LIMIT
from api.http import json_response, query_one, read_json
from api.routes import list_of, nullable
from api.routing import ROUTES, authed
from control.errors import BadRequest
from control.policy.plans import FEATURES, camel
from control.policy.proration import CYCLES
from control.services.billing import BillingService
from control.services.principal import Principal
from control.validate import limit_param

_STR = {"type": "string"}
_INT = {"type": "integer"}
_CENTS = {"type": "integer", "minimum": 0}
_TIME = {"type": "string", "format": "date-time"}
_CYCLE = {"type": "string", "enum": list(CYCLES)}
_PLAN_PROPS: dict[str, Any] = {
    "id": _STR, "name": _STR, "monthlyPriceCents": _CENTS, "annualPriceCents": _CENTS, "monthlyEventQuota": _LIMIT,
    "endpoints": _LIMIT, "maxRateLimitPerSec": _LIMIT, "retentionDays": _LIMIT,
    "features": {"type": "object", "properties": {camel(f): {"type": "boolean"} for f in FEATURES}}}
PLAN = ROUTES.component("BillingPlan", {"type": "object", "required": list(_PLAN_PROPS), "properties": _PLAN_PROPS})
PLANS = ROUTES.component("BillingPlans", {"type": "object", "required": ["data"],
                                          "properties": {"data": {"type": "array", "items": PLAN}}})
_SUB_PROPS: dict[str, Any] = {
    "status": {"type": "string", "enum": ["none", "active", "canceled"]}, "provider": nullable(_STR),
    "planId": _STR, "planName": _STR, "cycle": nullable(_CYCLE), "currentPeriodStart": nullable(_TIME),
    "currentPeriodEnd": nullable(_TIME), "cancelAtPeriodEnd": {"type": "boolean"},
    "scheduledChange": nullable({"type": "object", "required": ["planId", "cycle", "effectiveAt"],
                                 "properties": {"planId": _STR, "cycle": _CYCLE, "effectiveAt": _TIME}}),
    "creditCents": _CENTS}
SUBSCRIPTION = ROUTES.component("BillingSubscription", {"type": "object", "required": list(_SUB_PROPS),
                                                        "properties": _SUB_PROPS})
_INVOICE_PROPS: dict[str, Any] = {
    "id": {"type": "string", "format": "uuid"}, "number": _INT,
    "reason": {"type": "string", "enum": ["checkout", "change", "renewal"]},
    "status": {"type": "string", "enum": ["open", "paid", "void"]}, "provider": _STR, "planId": _STR,
    "cycle": _CYCLE, "periodStart": _TIME, "periodEnd": _TIME,
    "lines": {"type": "array", "items": {"type": "object", "required": ["description", "amountCents"],
                                         "properties": {"description": _STR, "amountCents": _INT}}},
    "totalCents": _CENTS, "createdAt": _TIME}
INVOICE = ROUTES.component("BillingInvoice", {"type": "object", "required": list(_INVOICE_PROPS),
                                              "properties": _INVOICE_PROPS})
_PRORATION_PROPS: dict[str, Any] = {
    "planId": _STR, "cycle": _CYCLE, "effective": {"type": "string", "enum": ["now", "renewal"]},
    "creditCents": _CENTS, "chargeCents": _CENTS, "dueTodayCents": _CENTS, "carriedCreditCents": _CENTS,
    "periodStart": _TIME, "periodEnd": _TIME,
    "nextRenewal": {"type": "object", "required": ["at", "amountCents"],
                    "properties": {"at": _TIME, "amountCents": _CENTS}}}
PRORATION = ROUTES.component("BillingProration", {"type": "object", "required": list(_PRORATION_PROPS),
                                                  "properties": _PRORATION_PROPS})
CHECKOUT_RESULT = ROUTES.component("BillingCheckout", {
    "type": "object", "required": ["status", "url", "subscription", "invoice"],
    "properties": {"status": {"type": "string", "enum": ["active", "scheduled", "pending"]},
                   "url": nullable({**_STR, "description": "where to pay when not activated at once"}),
                   "subscription": SUBSCRIPTION, "invoice": nullable(INVOICE), "proration": PRORATION}})
OVERVIEW = ROUTES.component("BillingOverview", {
    "type": "object", "required": ["subscription", "invoices", "plans"],
    "properties": {"subscription": SUBSCRIPTION, "invoices": {"type": "array", "items": INVOICE},
                   "plans": {"type": "array", "items": PLAN}}})
CHANGE = "BillingChange"
CHANGE_BODY = ROUTES.component(CHANGE, {
    "type": "object", "required": ["planId"], "additionalProperties": False,
    "properties": {"planId": {"type": "string", "minLength": 1, "maxLength": 64,
                              "description": "a plan id from GET /api/v1/billing/plans"},
                   "cycle": {**_CYCLE, "default": "monthly"}}})
_NO_SUB = {409: "No active subscription, or the change would change nothing"}


def with_plan_ids(doc: dict[str, Any], plan_ids: list[str]) -> dict[str, Any]:
    """The OpenAPI document with planId listing this server's catalogue (known only from settings)."""
    out = copy.deepcopy(doc)
    out["components"]["schemas"][CHANGE]["properties"]["planId"]["enum"] = plan_ids
    return out


def billing() -> BillingService:
    return ctx().service(BillingService)


def origin(request: Request) -> str:
    return own_origin(request, str(ctx().settings.section("auth")["public_url"] or "")) or ""


@ROUTES.add("GET", "/api/v1/billing/overview", "The subscription, recent invoices and the plan catalogue", "billing",
            "billing:read", response=OVERVIEW)
@authed()
async def billing_overview(request: Request, who: Principal) -> Response:
    return json_response(await billing().overview(who))


@ROUTES.add("GET", "/api/v1/billing/plans", "The plan catalogue, with prices", "billing", "billing:read",
            response=PLANS)
@authed()
async def billing_plans(request: Request, who: Principal) -> Response:
    return json_response(billing().plan_list())


@ROUTES.add("GET", "/api/v1/billing/subscription", "The workspace's subscription (status none without one)",
            "billing", "billing:read", response=SUBSCRIPTION)
@authed()
async def billing_subscription(request: Request, who: Principal) -> Response:
    return json_response(await billing().subscription(who))


@ROUTES.add("GET", "/api/v1/billing/invoices", "Invoices, newest first", "billing", "billing:read",
            query=(("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                   ("cursor", {"type": "string", "pattern": r"^\d{1,18}$"})), response=list_of(INVOICE))
@authed()
async def billing_invoices(request: Request, who: Principal) -> Response:
    cursor = query_one(request, "cursor")
    if cursor is not None and not (cursor.isdigit() and len(cursor) <= 18):
        raise BadRequest("cursor: not a cursor from this list")
    return json_response(await billing().invoices(who, limit_param(query_one(request, "limit"), 20, 100),
                                                  int(cursor) if cursor else None))


@ROUTES.add("POST", "/api/v1/billing/checkout", "Subscribe, or change plan (upgrades now, the rest at renewal)",
            "billing", "billing:write", body=CHANGE_BODY, response=CHECKOUT_RESULT, responses=_NO_SUB)
@authed()
async def billing_checkout(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await billing().checkout(who, body, origin(request)))


@ROUTES.add("POST", "/api/v1/billing/preview-update", "The proration of a plan change, without applying it",
            "billing", "billing:write", body=CHANGE_BODY, response=PRORATION, responses=_NO_SUB)
@authed()
async def billing_preview_update(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await billing().preview(who, body))


@ROUTES.add("POST", "/api/v1/billing/cancel", "Cancel at the end of the current period", "billing",
            "billing:write", response=SUBSCRIPTION, responses=_NO_SUB)
@authed()
async def billing_cancel(request: Request, who: Principal) -> Response:
    return json_response(await billing().cancel(who))


@ROUTES.add("POST", "/api/v1/billing/resume", "Undo a cancellation before it takes effect", "billing",
            "billing:write", response=SUBSCRIPTION, responses=_NO_SUB)
@authed()
async def billing_resume(request: Request, who: Principal) -> Response:
    return json_response(await billing().resume(who))


@ROUTES.add("DELETE", "/api/v1/billing/scheduled-change", "Undo a plan change scheduled for the renewal",
            "billing", "billing:write", response=SUBSCRIPTION, responses=_NO_SUB)
@authed()
async def billing_undo_scheduled_change(request: Request, who: Principal) -> Response:
    return json_response(await billing().undo_scheduled_change(who))


@ROUTES.add("POST", "/api/v1/billing/portal", "The provider's customer portal", "billing", "billing:write",
            response=ROUTES.component("BillingPortal", {"type": "object", "required": ["url"],
                                                        "properties": {"url": _STR}}))
@authed()
async def billing_portal(request: Request, who: Principal) -> Response:
    return json_response(await billing().portal(who, origin(request)))
