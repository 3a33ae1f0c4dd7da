"""Billing with the built-in local provider, through the API, its HTML pages and a real database: the
whole life cycle (checkout -> confirm page -> active -> preview -> change scheduled -> undo -> cancel
through the portal page -> resume -> rollover -> invoice), single-use page links, upgrades with
proration invoices, idempotent rollovers, and an audit row per mutation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from blacksheep import Content

from api.context import ctx
from control.policy.proration import period_end
from control.services.account import plans_path
from control.services.billing import BillingService
from control.services.keys import create_key
from control.services.principal import Principal
from control.settings import load_settings
from tests.integration.conftest import Caller
from tests.integration.plans_support import plans_app  # noqa: F401 - fixture


async def audit_actions(pool: asyncpg.Pool, client: uuid.UUID) -> list[str]:
    rows = await pool.fetch("SELECT action FROM audit_logs WHERE client_id = $1 AND resource = 'subscription'"
                            " ORDER BY id", client)
    return [r["action"] for r in rows]


async def page(api: Caller, url: str, action: str | None = None) -> tuple[int, str]:
    """GET (or, with an action, POST the form of) a local billing page; no API key: the link is all."""
    path = urlsplit(url).path
    if action is None:
        resp = await api.client.get(path)
    else:
        resp = await api.client.post(path, content=Content(b"application/x-www-form-urlencoded",
                                                            f"action={action}".encode()))
    assert resp.headers.get_first(b"Content-Type").startswith(b"text/html")
    return resp.status, (await resp.read()).decode()


async def subscribe(service: BillingService, who: Principal, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Checkout on the local provider, then the confirmation its page would POST."""
    out = await service.checkout(who, body, "http://x", now=now)
    assert out["status"] == "pending", out
    return await service.confirm_checkout(urlsplit(out["url"]).path.rsplit("/", 1)[1], now=now)


async def end_period_now(pool: asyncpg.Pool, client: uuid.UUID) -> None:
    """Move the current period into the past, as if its end had come."""
    await pool.execute("UPDATE subscriptions SET current_period_start = now() - interval '31 days',"
                       " current_period_end = now() - interval '1 second' WHERE client_id = $1", client)


async def test_the_whole_life_cycle(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    api, client = plans_app, uuid.UUID(plans_app.client_id)
    status, plans, _ = await api.call("GET", "/api/v1/billing/plans")
    assert status == 200 and [p["id"] for p in plans["data"]] == ["self-hosted", "free", "growth", "scale"]
    status, sub, _ = await api.call("GET", "/api/v1/billing/subscription")
    assert status == 200 and sub["status"] == "none" and sub["planId"] == "self-hosted"
    for path in ("/api/v1/billing/cancel", "/api/v1/billing/resume"):
        status, err, _ = await api.call("POST", path)
        assert status == 409 and err["code"] == "INVALID_STATE", err
    status, err, _ = await api.call("POST", "/api/v1/billing/preview-update", {"planId": "scale"})
    assert status == 409, err

    # checkout: pending, with a link to the local provider's page; confirming there activates it
    status, pending, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "growth"})
    assert status == 200 and pending["status"] == "pending" and pending["subscription"]["status"] == "none", pending
    assert pending["url"].startswith("http://") and "/billing/local/checkout/" in pending["url"]
    status, html = await page(api, pending["url"])
    assert status == 200 and "Growth (monthly): 49.00 per month" in html and 'value="confirm"' in html, html
    assert (await api.call("GET", "/api/v1/billing/subscription"))[1]["status"] == "none", "a GET changes nothing"
    status, html = await page(api, pending["url"], "cancel")
    assert status == 200 and "Checkout canceled" in html
    assert (await api.call("GET", "/api/v1/billing/subscription"))[1]["status"] == "none"
    status, html = await page(api, pending["url"], "confirm")
    assert status == 200 and "Subscribed" in html, html
    for action in (None, "confirm"):     # single use
        status, html = await page(api, pending["url"], action)
        assert status == 404 and "used already" in html, html
    assert (await page(api, pending["url"].replace("/checkout/", "/checkout/x")))[0] == 404
    assert (await page(api, pending["url"].replace("/checkout/", "/portal/")))[0] == 404, "not a portal link"
    status, sub, _ = await api.call("GET", "/api/v1/billing/subscription")
    out = {"subscription": sub, "invoice": (await api.call("GET", "/api/v1/billing/invoices"))[1]["data"][0]}
    assert sub["status"] == "active" and sub["provider"] == "local"
    assert out["subscription"]["planId"] == "growth" and out["subscription"]["cycle"] == "monthly"
    invoice = out["invoice"]
    assert (invoice["totalCents"], invoice["status"], invoice["reason"]) == (4900, "open", "checkout")
    status, ent, _ = await api.call("GET", "/api/v1/entitlements")
    assert ent["planId"] == "growth" and ent["monthlyEventQuota"] == 1000, "the plan is the workspace's now"
    status, err, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "growth", "cycle": "monthly"})
    assert status == 409, "already on it"

    # preview a downgrade (scheduled) and an upgrade (now); neither changes anything
    status, down, _ = await api.call("POST", "/api/v1/billing/preview-update", {"planId": "free"})
    assert status == 200 and down["effective"] == "renewal" and down["dueTodayCents"] == 0, down
    assert down["nextRenewal"] == {"at": out["subscription"]["currentPeriodEnd"], "amountCents": 0}
    status, up, _ = await api.call("POST", "/api/v1/billing/preview-update", {"planId": "scale", "cycle": "annual"})
    assert status == 200 and up["effective"] == "now" and up["chargeCents"] == 199000
    assert 4800 <= up["creditCents"] <= 4900 and up["dueTodayCents"] == 199000 - up["creditCents"]
    assert (await api.call("GET", "/api/v1/billing/subscription"))[1]["planId"] == "growth"

    # schedule a downgrade, undo it, schedule it again
    status, sched, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "free"})
    assert status == 200 and sched["status"] == "scheduled" and sched["invoice"] is None
    assert sched["subscription"]["scheduledChange"]["planId"] == "free"
    status, undone, _ = await api.call("DELETE", "/api/v1/billing/scheduled-change")
    assert status == 200 and undone["scheduledChange"] is None
    assert (await api.call("DELETE", "/api/v1/billing/scheduled-change"))[0] == 409
    await api.call("POST", "/api/v1/billing/checkout", {"planId": "free"})

    # cancel through the portal page (its link is single use too), resume through the API
    status, portal, _ = await api.call("POST", "/api/v1/billing/portal")
    assert status == 200 and "/billing/local/portal/" in portal["url"]
    status, html = await page(api, portal["url"])
    assert status == 200 and "Growth (monthly): 49.00 per month" in html and 'value="cancel"' in html, html
    assert (await page(api, portal["url"], "delete"))[0] == 400
    status, html = await page(api, portal["url"], "cancel")
    assert status == 200 and "will end on" in html, html
    assert (await page(api, portal["url"], "resume"))[0] == 404, "used"
    status, canceled, _ = await api.call("GET", "/api/v1/billing/subscription")
    assert canceled["cancelAtPeriodEnd"] and canceled["status"] == "active"
    assert (await api.call("POST", "/api/v1/billing/cancel"))[0] == 409
    status, resumed, _ = await api.call("POST", "/api/v1/billing/resume")
    assert status == 200 and not resumed["cancelAtPeriodEnd"]

    # rollover: the scheduled change applies at renewal, with a renewal invoice, once
    await end_period_now(pool, client)
    status, renewed, _ = await api.call("GET", "/api/v1/billing/subscription")
    assert renewed["planId"] == "free" and renewed["scheduledChange"] is None
    assert datetime.fromisoformat(renewed["currentPeriodEnd"]) > datetime.now(UTC)
    status, invoices, _ = await api.call("GET", "/api/v1/billing/invoices")
    assert [(i["number"], i["reason"], i["planId"], i["totalCents"], i["status"]) for i in invoices["data"]] == [
        (2, "renewal", "free", 0, "paid"), (1, "checkout", "growth", 4900, "open")]
    service = BillingService(pool, 1, load_settings(env={"MITTR_ACCOUNT__PLANS_FILE": str(plans_file(api))}))
    assert await service.rollover_due() == 0, "nothing due twice"
    assert (await api.call("GET", "/api/v1/entitlements"))[1]["planId"] == "free"

    # cancel, then the period ends: back on the default plan
    await api.call("POST", "/api/v1/billing/cancel")
    await end_period_now(pool, client)
    assert await service.rollover_due() == 1
    status, ended, _ = await api.call("GET", "/api/v1/billing/subscription")
    assert ended["status"] == "canceled" and ended["planId"] == "free", "the plan it ended on"
    assert (await api.call("GET", "/api/v1/entitlements"))[1]["planId"] == "self-hosted"
    assert (await api.call("POST", "/api/v1/billing/cancel"))[0] == 409

    status, portal, _ = await api.call("POST", "/api/v1/billing/portal")
    status, html = await page(api, portal["url"])
    assert status == 200 and "no active subscription" in html
    status, overview, _ = await api.call("GET", "/api/v1/billing/overview")
    assert status == 200 and overview["subscription"]["status"] == "canceled"
    assert len(overview["invoices"]) == 2 and len(overview["plans"]) == 4
    assert await audit_actions(pool, client) == ["create", "schedule", "unschedule", "schedule", "cancel", "resume",
                                                 "renew", "cancel", "expire"]


def plans_file(api: Caller) -> Any:
    """The catalogue file the running app reads (a service made here must read the same)."""
    return plans_path(ctx().settings)


async def test_an_upgrade_now_invoices_the_proration(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    api, client = plans_app, uuid.UUID(plans_app.client_id)
    service = BillingService(pool, 1, load_settings(env={"MITTR_ACCOUNT__PLANS_FILE": str(plans_file(api))}))
    start = datetime(2026, 4, 1, tzinfo=UTC)
    who = Principal(client, None, frozenset(), None)
    await subscribe(service, who, {"planId": "growth"}, start)
    at = start + timedelta(days=12)
    preview = await service.preview(who, {"planId": "scale"}, now=at)
    assert (preview["creditCents"], preview["chargeCents"], preview["dueTodayCents"]) == (2940, 19900, 16960)
    out = await service.checkout(who, {"planId": "scale"}, "http://x", now=at)
    assert out["status"] == "active" and out["invoice"]["totalCents"] == 16960
    assert [line["amountCents"] for line in out["invoice"]["lines"]] == [-2940, 19900]
    assert out["subscription"]["currentPeriodStart"] == "2026-04-13T00:00:00Z"
    assert out["subscription"]["currentPeriodEnd"] == period_end(at, "monthly").strftime("%Y-%m-%dT%H:%M:%SZ")
    # annual -> monthly waits for the renewal, whatever the plans' prices
    await service.checkout(who, {"planId": "scale", "cycle": "annual"}, "http://x", now=at + timedelta(days=1))
    out = await service.checkout(who, {"planId": "scale", "cycle": "monthly"}, "http://x", now=at + timedelta(days=2))
    assert out["status"] == "scheduled"


async def test_billing_writes_are_for_admins_and_validated(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    reader = await create_key(pool, uuid.UUID(plans_app.client_id), "r", scopes=["billing:read"])
    assert (await plans_app.call("GET", "/api/v1/billing/overview", key=reader.key))[0] == 200
    status, err, _ = await plans_app.call("POST", "/api/v1/billing/checkout", {"planId": "growth"}, key=reader.key)
    assert status == 403 and err["code"] == "FORBIDDEN"
    bad = (({}, "planId"), ({"planId": "nope"}, "planId"), ({"planId": "growth", "cycle": "weekly"}, "cycle"),
           ({"planId": "growth", "x": 1}, "x"))
    for body, field in bad:
        status, err, _ = await plans_app.call("POST", "/api/v1/billing/checkout", body)
        assert status == 400 and err["error"].startswith(f"{field}:"), (body, err)
    assert await pool.fetchval("SELECT count(*) FROM subscriptions") == 0
