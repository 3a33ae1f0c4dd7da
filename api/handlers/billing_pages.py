"""The local billing provider's two pages (control/services/billing_providers.py): checkout, to
confirm a subscription, and the portal, to cancel or resume it. Plain server-rendered HTML, no
script, no styles from elsewhere; the single-use token in the path is the only credential, so the
pages show nothing of the workspace beyond plan names, amounts and the period's end. Not API routes:
they are left out of the OpenAPI document and answer HTML, errors included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import parse_qs

from blacksheep import Content, Request, Response

from api.context import ctx
from api.http import read_body
from control.errors import ApiError
from control.services.billing import BillingService

FORM_LIMIT = 1024
HEADERS = [(b"Cache-Control", b"no-store"), (b"Referrer-Policy", b"no-referrer"), (b"X-Frame-Options", b"DENY"),
           (b"Content-Security-Policy", b"default-src 'none'; form-action 'self'; frame-ancestors 'none'")]


def page(title: str, body: str, status: int = 200) -> Response:
    html = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")
    return Response(status, list(HEADERS), Content(b"text/html; charset=utf-8", html.encode()))


def button(action: str, label: str) -> str:
    return (f"<form method=\"post\"><input type=\"hidden\" name=\"action\" value=\"{escape(action)}\">"
            f"<button type=\"submit\">{escape(label)}</button></form>")


def price_text(info: dict[str, Any]) -> str:
    cents, per = int(info["amountCents"]), "month" if info["cycle"] == "monthly" else "year"
    return f"{cents // 100}.{cents % 100:02d} per {per}"


async def action(request: Request) -> str:
    form = parse_qs((await read_body(request, FORM_LIMIT)).decode("utf-8", "replace"))
    return (form.get("action") or [""])[0]


def token_of(request: Request) -> str:
    return str(request.route_values.get("token") or "")


def billing() -> BillingService:
    return ctx().service(BillingService)


def failing(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """An API error as an HTML page with its status (a used link: 404)."""
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return page("Billing", f"<p>{escape(exc.message)}</p>", exc.status)
    return handler


@failing
async def checkout_get(request: Request) -> Response:
    info = await billing().checkout_page(token_of(request))
    return page("Confirm your subscription",
                f"<p>{escape(info['planName'])} ({escape(info['cycle'])}): {price_text(info)}.</p>"
                + button("confirm", "Subscribe") + button("cancel", "Cancel"))


@failing
async def checkout_post(request: Request) -> Response:
    token = token_of(request)
    if await action(request) != "confirm":
        billing().checkout_link(token)          # a bad link still answers 404
        return page("Checkout canceled", "<p>Nothing was changed. You can close this page.</p>")
    out = await billing().confirm_checkout(token)
    sub = out["subscription"]
    return page("Subscribed", f"<p>{escape(sub['planName'])} ({escape(sub['cycle'])}) is active until "
                              f"{escape(sub['currentPeriodEnd'])}. You can close this page.</p>")


@failing
async def portal_get(request: Request) -> Response:
    info = await billing().portal_page(token_of(request))
    if not info["active"]:
        return page("Billing", "<p>There is no active subscription.</p>")
    text = (f"<p>{escape(info['planName'])} ({escape(info['cycle'])}): {price_text(info)}; the current "
            f"period ends {escape(info['periodEnd'])}.</p>")
    if info["canceling"]:
        return page("Billing", text + "<p>It is set to end then.</p>" + button("resume", "Keep the subscription"))
    return page("Billing", text + button("cancel", "Cancel at the end of the period"))


@failing
async def portal_post(request: Request) -> Response:
    out = await billing().portal_action(token_of(request), await action(request))
    done = "will end on" if out["cancelAtPeriodEnd"] else "continues after"
    return page("Billing", f"<p>{escape(out['planName'])} {done} {escape(out['currentPeriodEnd'] or '')}. "
                           "You can close this page.</p>")


PAGES: tuple[tuple[str, str, Callable[[Request], Awaitable[Response]]], ...] = (
    ("GET", "/billing/local/checkout/{token}", checkout_get),
    ("POST", "/billing/local/checkout/{token}", checkout_post),
    ("GET", "/billing/local/portal/{token}", portal_get),
    ("POST", "/billing/local/portal/{token}", portal_post),
)
