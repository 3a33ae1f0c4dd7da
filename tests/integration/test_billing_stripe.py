"""The Stripe billing provider through the real app and database, against a Stripe wire stand-in on
127.0.0.1 (tests/support/stripe_wire.py) that answers with Stripe's object shapes and records every
request as the stripe SDK sends it: checkout -> checkout.session.completed -> active; preview-update
from Stripe's invoice preview; an upgrade prorated now; a downgrade in a
subscription schedule, undone; cancel and resume; invoices from invoice.paid/payment_failed; the
webhook's signature (made by the official stripe library), its tolerance and replays; retries with
one Idempotency-Key, and Stripe's refusals passed on."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import stripe
from blacksheep.testing import TestClient

from control.services.keys import create_client, create_key
from control.services.stripe_api import API_VERSION
from control.settings import load_settings
from tests.integration.conftest import Caller
from tests.integration.plans_support import PLANS, plans_app  # noqa: F401 - fixture
from tests.integration.test_billing import audit_actions
from tests.support.stripe_wire import StripeWire, fixture, patched

SECRET_KEY = "sk_test_51MittrWireTestKey000000000000000000"
WEBHOOK_SECRET = "whsec_mittrWireTestSigningSecret0000000"
PRICES = {("growth", "monthly"): "price_1SZmittrGrowthMonth", ("growth", "annual"): "price_1SZmittrGrowthYear",
          ("scale", "monthly"): "price_1SZmittrScaleMonth", ("scale", "annual"): "price_1SZmittrScaleYear",
          ("free", "monthly"): "price_1SZmittrFreeMonth"}
CUS, SUB, SI = "cus_TWx4mittrExampl", "sub_1SZmittrGrowthSub", "si_TWx4mittrItem001"
SCHED, INV = "sub_sched_1SZmittrSched01", "in_1SZmittrInvoice01"
HOOK = "/billing/stripe/webhook"
DAY = 86400


@pytest.fixture
async def wire() -> AsyncIterator[StripeWire]:
    w = StripeWire()
    await w.start()
    try:
        yield w
    finally:
        await w.stop()


@pytest.fixture
async def stripe_app(db_url: str, pool: asyncpg.Pool, tmp_path: Path, wire: StripeWire) -> AsyncIterator[Caller]:
    """The app with [billing] provider = "stripe" against the wire; one workspace, an admin key."""
    from api.app import create_app

    plans = tmp_path / "plans.toml"
    plans.write_text(PLANS)
    prices = "".join(f'{plan}.{cycle} = "{price}"\n' for (plan, cycle), price in PRICES.items())
    config = tmp_path / "mittr.toml"
    config.write_text(f'[billing]\nprovider = "stripe"\n\n[billing.stripe]\napi_base = "{wire.url}"\n'
                      f'return_url = "https://mittr.example.com/billing"\nmax_retries = 1\ntimeout_s = 5.0\n\n'
                      f'[billing.stripe.prices]\n{prices}\n')
    settings = load_settings(config, env={"DATABASE_URL": db_url, "MITTR_ACCOUNT__PLANS_FILE": str(plans),
                                          "MITTR_BILLING__STRIPE__SECRET_KEY": SECRET_KEY,
                                          "MITTR_BILLING__STRIPE__WEBHOOK_SECRET": WEBHOOK_SECRET})
    app = create_app(settings)
    await app.start()
    client_row = await create_client(pool, "tenant-stripe")
    key = await create_key(pool, client_row["id"], "admin")
    try:
        yield Caller(TestClient(app), key.key, str(client_row["id"]))
    finally:
        await app.stop()


def period(start: int | None = None, days: int = 30) -> dict[str, Any]:
    """A subscription's item with a period of `days` from `start` (default: a day ago)."""
    begin = start if start is not None else int(time.time()) - DAY
    return {"current_period_start": begin, "current_period_end": begin + days * DAY}


def subscription(client: str, price: str = PRICES[("growth", "monthly")], **changes: Any) -> dict[str, Any]:
    """The fixture subscription for the workspace, on `price`, with `changes` (and `item` for its item)."""
    base = fixture("subscription")
    item = patched(base["items"]["data"][0], {"price": {"id": price}, "plan": {"id": price},
                                              **changes.pop("item", period())})
    return patched(base, {"metadata": {"mittr_workspace_id": client}, "items": {"data": [item]}, **changes})


def event(name: str, obj: dict[str, Any] | None = None, event_id: str | None = None,
          kind: str | None = None) -> dict[str, Any]:
    """A recorded event with its object replaced (and a fresh id unless one is given)."""
    out = fixture(name)
    if obj is not None:
        out["data"]["object"] = obj
    out["id"] = event_id or f"evt_{uuid.uuid4().hex[:24]}"
    if kind is not None:
        out["type"] = kind
    return out


async def deliver(api: Caller, evt: dict[str, Any], secret: str = WEBHOOK_SECRET, timestamp: int | None = None,
                  header: str | None = None) -> tuple[int, Any]:
    """POST an event as Stripe does: the body as sent, signed by the stripe library itself."""
    body = json.dumps(evt, separators=(",", ":")).encode()
    if header is None:
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=timestamp)
    status, out, _ = await api.call("POST", HOOK, raw=body, headers={"Stripe-Signature": header})
    return status, out


def stripe_headers_ok(sent: Any, post: bool = True) -> str | None:
    """Every call carries the key and the pinned version; a POST carries an Idempotency-Key (returned)."""
    assert sent.headers["Authorization"] == f"Bearer {SECRET_KEY}"
    assert sent.headers["Stripe-Version"] == API_VERSION
    key = sent.headers.get("Idempotency-Key")
    if post:
        assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert key and len(key) <= 255
    else:
        assert key is None
    return key


async def subscribe(api: Caller, wire: StripeWire, sub: dict[str, Any] | None = None) -> dict[str, Any]:
    """Checkout (customer, Checkout Session), then Stripe's checkout.session.completed: active."""
    wire.reply("POST", "/v1/customers", patched(fixture("customer"), {"metadata": {
        "mittr_workspace_id": api.client_id}}))
    wire.reply("POST", "/v1/checkout/sessions", patched(fixture("checkout_session"),
                                                        {"client_reference_id": api.client_id}))
    status, out, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "growth"})
    assert status == 200 and out["status"] == "pending", out
    sub = sub or subscription(api.client_id)
    wire.reply("GET", f"/v1/subscriptions/{SUB}", sub)
    session = patched(fixture("event_checkout_session_completed")["data"]["object"],
                      {"client_reference_id": api.client_id})
    status, got = await deliver(api, event("event_checkout_session_completed", session))
    assert status == 200 and got == {"received": True, "handled": True}, got
    return sub


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_checkout_then_the_webhook_activates_the_subscription(stripe_app: Caller, wire: StripeWire,
                                                                    pool: asyncpg.Pool) -> None:
    api, client = stripe_app, stripe_app.client_id
    wire.reply("POST", "/v1/customers", patched(fixture("customer"), {"metadata": {"mittr_workspace_id": client}}))
    wire.reply("POST", "/v1/checkout/sessions", patched(fixture("checkout_session"), {"client_reference_id": client}))
    status, out, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "growth"})
    assert status == 200 and out["status"] == "pending" and out["subscription"]["status"] == "none", out
    assert out["url"] == fixture("checkout_session")["url"]
    [made, session] = wire.sent
    assert (made.method, made.path, session.path) == ("POST", "/v1/customers", "/v1/checkout/sessions")
    assert stripe_headers_ok(made) == f"mittr-customer-{client}", "one customer per workspace, whatever retries"
    assert made.form["metadata[mittr_workspace_id]"] == client
    key = stripe_headers_ok(session)
    assert session.form == {
        "mode": "subscription", "customer": CUS, "client_reference_id": client,
        "line_items[0][price]": PRICES[("growth", "monthly")], "line_items[0][quantity]": "1",
        "success_url": "https://mittr.example.com/billing?checkout=success&session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://mittr.example.com/billing?checkout=canceled",
        "metadata[mittr_workspace_id]": client, "subscription_data[metadata][mittr_workspace_id]": client}
    status, again, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "growth", "cycle": "annual"})
    assert status == 200 and again["status"] == "pending"
    assert [s.path for s in wire.sent[2:]] == ["/v1/checkout/sessions"], "the customer is made once"
    assert wire.sent[2].form["line_items[0][price]"] == PRICES[("growth", "annual")]
    assert stripe_headers_ok(wire.sent[2]) != key, "a new session is a new request"
    status, err, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "free", "cycle": "annual"})
    assert status == 400 and "no Stripe price" in err["error"], err
    assert (await api.call("GET", "/api/v1/billing/subscription"))[1]["status"] == "none", "nothing until paid"

    sub = subscription(client)
    wire.reply("GET", f"/v1/subscriptions/{SUB}", sub)
    wire.clear()
    completed = patched(fixture("event_checkout_session_completed")["data"]["object"], {"client_reference_id": client})
    status, got = await deliver(api, event("event_checkout_session_completed", completed))
    assert status == 200 and got == {"received": True, "handled": True}, got
    [read] = wire.sent
    assert (read.method, read.path) == ("GET", f"/v1/subscriptions/{SUB}")
    assert stripe_headers_ok(read, post=False) is None
    status, now, _ = await api.call("GET", "/api/v1/billing/subscription")
    item = sub["items"]["data"][0]
    assert now == {"status": "active", "provider": "stripe", "planId": "growth", "planName": "Growth",
                   "cycle": "monthly", "currentPeriodStart": iso(item["current_period_start"]),
                   "currentPeriodEnd": iso(item["current_period_end"]), "cancelAtPeriodEnd": False,
                   "scheduledChange": None, "creditCents": 0}
    assert (await api.call("GET", "/api/v1/entitlements"))[1]["planId"] == "growth"

    # the checkout's invoice, paid: it appears in the invoices, once however often it is reported
    wire.reply("GET", f"/v1/invoices/{INV}", fixture("invoice"))
    for _ in range(2):
        status, got = await deliver(api, event("event_invoice_paid"))
        assert status == 200 and got["handled"], got
    status, invoices, _ = await api.call("GET", "/api/v1/billing/invoices")
    [inv] = invoices["data"]
    assert (inv["number"], inv["reason"], inv["status"], inv["provider"], inv["planId"], inv["cycle"]) == (
        1, "checkout", "paid", "stripe", "growth", "monthly")
    line = fixture("invoice")["lines"]["data"][0]
    assert inv["totalCents"] == 4900 and inv["lines"] == [{"description": line["description"], "amountCents": 4900}]
    assert (inv["periodStart"], inv["periodEnd"]) == (iso(1764460800), iso(1764460800 + 30 * DAY))
    status, overview, _ = await api.call("GET", "/api/v1/billing/overview")
    assert overview["subscription"]["planId"] == "growth" and len(overview["invoices"]) == 1
    assert await audit_actions(pool, uuid.UUID(client)) == ["create"]
    assert await pool.fetchval("SELECT count(*) FROM stripe_events WHERE client_id = $1", uuid.UUID(client)) == 3


async def test_a_payment_failure_leaves_the_invoice_open_and_paid_is_final(stripe_app: Caller,
                                                                           wire: StripeWire) -> None:
    api = stripe_app
    await subscribe(api, wire)
    failed = patched(fixture("invoice"), {"status": "open", "amount_paid": 0, "amount_remaining": 4900,
                                          "attempt_count": 1, "billing_reason": "subscription_cycle"})
    wire.reply("GET", f"/v1/invoices/{INV}", failed)
    wire.reply("GET", f"/v1/invoices/{INV}", fixture("invoice"))
    wire.reply("GET", f"/v1/invoices/{INV}", failed)
    seen = []
    for kind in ("invoice.payment_failed", "invoice.paid", "invoice.payment_failed"):   # the last one late
        status, _ = await deliver(api, event("event_invoice_paid", kind=kind))
        assert status == 200
        invoices = (await api.call("GET", "/api/v1/billing/invoices"))[1]["data"]
        seen.append([(i["reason"], i["status"]) for i in invoices])
    assert seen == [[("renewal", "open")], [("renewal", "paid")], [("renewal", "paid")]]


async def test_an_upgrade_is_prorated_now_and_waits_for_the_payment(stripe_app: Caller, wire: StripeWire,
                                                                    pool: asyncpg.Pool) -> None:
    api = stripe_app
    await subscribe(api, wire)
    start = int(time.time())
    credit, charge = -4738, 19900
    proration = patched(fixture("invoice"), {
        "id": "in_1SZmittrProration01", "billing_reason": "subscription_update", "amount_due": charge + credit,
        "amount_paid": charge + credit, "subtotal": charge + credit, "total": charge + credit,
        "lines": {"data": [
            patched(fixture("invoice")["lines"]["data"][0], {
                "id": "il_1SZmittrCredit01", "amount": credit, "description": "Unused time on Growth after 30 Nov 2026",
                "parent": {"subscription_item_details": {"proration": True}}}),
            patched(fixture("invoice")["lines"]["data"][0], {
                "id": "il_1SZmittrCharge01", "amount": charge, "description": "1 x Scale (at $199.00 / month)",
                "period": {"start": start, "end": start + 30 * DAY},
                "pricing": {"price_details": {"price": PRICES[("scale", "monthly")]}}})]}})
    upgraded = subscription(api.client_id, PRICES[("scale", "monthly")], item=period(start),
                            latest_invoice=proration)
    wire.reply("POST", f"/v1/subscriptions/{SUB}", upgraded)
    wire.clear()
    status, out, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "scale"})
    assert status == 200 and out["status"] == "active" and out["url"] is None, out
    [update] = wire.sent
    stripe_headers_ok(update)
    assert update.form == {"items[0][id]": SI, "items[0][price]": PRICES[("scale", "monthly")],
                           "proration_behavior": "always_invoice", "billing_cycle_anchor[type]": "now",
                           "payment_behavior": "pending_if_incomplete", "expand[0]": "latest_invoice"}
    assert out["subscription"]["planId"] == "scale" and out["subscription"]["currentPeriodStart"] == iso(start)
    assert out["proration"]["effective"] == "now"
    inv = out["invoice"]
    assert (inv["reason"], inv["status"], inv["planId"], inv["totalCents"]) == ("change", "paid", "scale", 15162)
    assert [line["amountCents"] for line in inv["lines"]] == [credit, charge]
    assert (inv["periodStart"], inv["periodEnd"]) == (iso(start), iso(start + 30 * DAY))
    assert (await api.call("GET", "/api/v1/entitlements"))[1]["planId"] == "scale"
    assert await audit_actions(pool, uuid.UUID(api.client_id)) == ["create", "update"]

    # a card that needs action: Stripe keeps the change pending; the workspace stays where it was
    pending = subscription(api.client_id, PRICES[("scale", "monthly")], item=period(start), pending_update={
        "billing_cycle_anchor": None, "expires_at": start + DAY, "subscription_items": [], "trial_end": None,
        "trial_from_plan": None}, latest_invoice=patched(proration, {
            "id": "in_1SZmittrPending001", "status": "open", "amount_paid": 0,
            "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1SZmittrAccount/test_pending"}))
    wire.reply("POST", f"/v1/subscriptions/{SUB}", pending)
    status, out, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "scale", "cycle": "annual"})
    assert status == 200 and out["status"] == "pending", out
    assert wire.sent[-1].form["items[0][price]"] == PRICES[("scale", "annual")]
    assert out["url"] == "https://invoice.stripe.com/i/acct_1SZmittrAccount/test_pending"
    assert out["subscription"]["planId"] == "scale" and out["invoice"]["status"] == "open"


async def test_a_downgrade_waits_in_a_schedule_and_can_be_undone(stripe_app: Caller, wire: StripeWire) -> None:
    api = stripe_app
    sub = await subscribe(api, wire)
    item = sub["items"]["data"][0]
    begin, end = item["current_period_start"], item["current_period_end"]
    schedule = patched(fixture("subscription_schedule"), {"current_phase": {"start_date": begin, "end_date": end}})
    schedule["phases"][0].update(start_date=begin, end_date=end)
    wire.reply("POST", "/v1/subscription_schedules", schedule)
    wire.reply("POST", f"/v1/subscription_schedules/{SCHED}", schedule)
    wire.clear()
    status, out, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "free"})
    assert status == 200 and out["status"] == "scheduled" and out["invoice"] is None, out
    assert out["subscription"]["scheduledChange"] == {"planId": "free", "cycle": "monthly", "effectiveAt": iso(end)}
    assert out["subscription"]["planId"] == "growth"
    made, phases = wire.sent
    assert (made.path, made.form) == ("/v1/subscription_schedules", {"from_subscription": SUB})
    assert phases.path == f"/v1/subscription_schedules/{SCHED}"
    assert stripe_headers_ok(made) != stripe_headers_ok(phases)
    assert phases.form == {
        "end_behavior": "release", "proration_behavior": "none",
        "phases[0][items][0][price]": PRICES[("growth", "monthly")], "phases[0][items][0][quantity]": "1",
        "phases[0][start_date]": str(begin), "phases[0][end_date]": str(end),
        "phases[1][items][0][price]": PRICES[("free", "monthly")], "phases[1][items][0][quantity]": "1",
        "phases[1][duration][interval]": "month", "phases[1][duration][interval_count]": "1"}

    # Stripe reports the subscription under the schedule: the change it holds is read from it
    wire.reply("GET", f"/v1/subscriptions/{SUB}", patched(sub, {"schedule": SCHED}))
    later = dict(schedule, phases=[*schedule["phases"], {**schedule["phases"][0], "start_date": end,
                                                         "end_date": end + 30 * DAY, "items": [
                                                             {"price": PRICES[("free", "monthly")], "quantity": 1}]}])
    wire.reply("GET", f"/v1/subscription_schedules/{SCHED}", later)
    status, _ = await deliver(api, event("event_customer_subscription_updated", patched(sub, {"schedule": SCHED})))
    assert status == 200
    assert (await api.call("GET", "/api/v1/billing/subscription"))[1]["scheduledChange"]["planId"] == "free"

    wire.reply("POST", f"/v1/subscription_schedules/{SCHED}/release",
               patched(schedule, {"status": "released", "subscription": None, "released_subscription": SUB}))
    wire.clear()
    status, undone, _ = await api.call("DELETE", "/api/v1/billing/scheduled-change")
    assert status == 200 and undone["scheduledChange"] is None, undone
    [release] = wire.sent
    assert release.path == f"/v1/subscription_schedules/{SCHED}/release" and release.form == {}
    stripe_headers_ok(release)
    assert (await api.call("DELETE", "/api/v1/billing/scheduled-change"))[0] == 409


async def test_cancel_at_period_end_resume_and_the_end(stripe_app: Caller, wire: StripeWire,
                                                        pool: asyncpg.Pool) -> None:
    api = stripe_app
    sub = await subscribe(api, wire)
    wire.reply("POST", f"/v1/subscriptions/{SUB}", patched(sub, {"cancel_at_period_end": True}))
    wire.reply("POST", f"/v1/subscriptions/{SUB}", sub)
    wire.clear()
    status, canceled, _ = await api.call("POST", "/api/v1/billing/cancel")
    assert status == 200 and canceled["cancelAtPeriodEnd"] and canceled["status"] == "active", canceled
    assert (await api.call("POST", "/api/v1/billing/cancel"))[0] == 409
    status, resumed, _ = await api.call("POST", "/api/v1/billing/resume")
    assert status == 200 and not resumed["cancelAtPeriodEnd"], resumed
    assert [s.form for s in wire.calls("POST", f"/v1/subscriptions/{SUB}")] == [
        {"cancel_at_period_end": "true"}, {"cancel_at_period_end": "false"}]
    assert all(stripe_headers_ok(s) for s in wire.sent)

    # the portal, for the workspace's customer
    wire.reply("POST", "/v1/billing_portal/sessions", fixture("billing_portal_session"))
    status, portal, _ = await api.call("POST", "/api/v1/billing/portal")
    assert status == 200 and portal == {"url": fixture("billing_portal_session")["url"]}
    assert wire.calls("POST", "/v1/billing_portal/sessions")[0].form == {
        "customer": CUS, "return_url": "https://mittr.example.com/billing"}

    # the period ends at Stripe: customer.subscription.deleted, and the workspace is back on the default plan
    ended = patched(sub, {"status": "canceled", "ended_at": int(time.time()), "canceled_at": int(time.time())})
    wire.reply("GET", f"/v1/subscriptions/{SUB}", ended)
    status, _ = await deliver(api, event("event_customer_subscription_updated", ended,
                                         kind="customer.subscription.deleted"))
    assert status == 200
    status, now, _ = await api.call("GET", "/api/v1/billing/subscription")
    assert now["status"] == "canceled" and now["planId"] == "growth"
    assert (await api.call("GET", "/api/v1/entitlements"))[1]["planId"] == "self-hosted"
    assert await audit_actions(pool, uuid.UUID(api.client_id)) == ["create", "cancel", "resume", "expire"]
    assert await pool.fetchval("SELECT count(*) FROM subscriptions WHERE provider = 'stripe'") == 1


async def test_the_rollover_leaves_stripe_subscriptions_to_stripe(stripe_app: Caller, wire: StripeWire,
                                                                 pool: asyncpg.Pool) -> None:
    api = stripe_app
    await subscribe(api, wire, subscription(stripe_app.client_id, item=period(int(time.time()) - 31 * DAY)))
    from api.context import ctx
    from control.services.billing import BillingService
    assert await ctx().service(BillingService).rollover_due() == 0
    sub = (await api.call("GET", "/api/v1/billing/subscription"))[1]
    assert sub["planId"] == "growth" and sub["status"] == "active", "no local renewal"
    assert (await api.call("GET", "/api/v1/billing/invoices"))[1]["data"] == []


async def test_the_webhook_checks_the_signature_and_handles_each_event_once(stripe_app: Caller, wire: StripeWire,
                                                                           pool: asyncpg.Pool) -> None:
    api = stripe_app
    sub = await subscribe(api, wire)
    evt = event("event_customer_subscription_updated", patched(sub, {"cancel_at_period_end": True}))
    wire.reply("GET", f"/v1/subscriptions/{SUB}", patched(sub, {"cancel_at_period_end": True}))
    wire.clear()
    body = json.dumps(evt, separators=(",", ":")).encode()     # as deliver() sends it
    now = int(time.time())
    good = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET, timestamp=now)
    wrong = stripe.WebhookSignature.generate_signature_header(body.decode(), "whsec_another", timestamp=now)
    refused = {
        "wrong secret": wrong,
        "stale": stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET, timestamp=now - 301),
        "future": stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET, timestamp=now + 301),
        "no v1": f"t={now}",
        "v0 only": good.replace("v1=", "v0="),
        "garbage": "nonsense",
    }
    for why, header in refused.items():
        status, out, _ = await api.call("POST", HOOK, raw=body, headers={"Stripe-Signature": header})
        assert status == 400 and out["code"] == "INVALID_SIGNATURE", (why, out)
    status, out, _ = await api.call("POST", HOOK, raw=body)
    assert status == 400 and out["code"] == "INVALID_SIGNATURE", "no header"
    status, out, _ = await api.call("POST", HOOK, raw=body + b" ", headers={"Stripe-Signature": good})
    assert status == 400, "the signature covers the body as sent"
    assert wire.sent == [] and not (await api.call("GET", "/api/v1/billing/subscription"))[1]["cancelAtPeriodEnd"]

    # during a secret's rotation Stripe signs with both: any v1 may match
    rotating = f"{wrong},v1={good.split('v1=')[1]}"
    status, out = await deliver(api, evt, header=rotating)
    assert status == 200 and out == {"received": True, "handled": True}, out
    assert (await api.call("GET", "/api/v1/billing/subscription"))[1]["cancelAtPeriodEnd"]
    for _ in range(2):     # Stripe redelivers: answered, not handled again
        status, out = await deliver(api, evt)
        assert status == 200 and out == {"received": True, "duplicate": True}, out
    assert len(wire.calls("GET", f"/v1/subscriptions/{SUB}")) == 1
    assert await audit_actions(pool, uuid.UUID(api.client_id)) == ["create", "update"]

    status, out = await deliver(api, {"id": "evt_x", "type": "x"})
    assert status == 400 and out["error"] == "body: not a Stripe event"
    status, out = await deliver(api, event("event_invoice_paid", {"id": "po_1", "customer": CUS},
                                           kind="payout.paid"))
    assert status == 200 and out == {"received": True, "handled": False}
    status, out = await deliver(api, event("event_invoice_paid", patched(fixture("invoice"), {
        "customer": "cus_someoneElse"})))
    assert status == 200 and out == {"received": True, "handled": False}, "a customer of no workspace"


async def test_a_failed_read_back_rolls_the_event_back_for_stripe_to_retry(stripe_app: Caller,
                                                                          wire: StripeWire) -> None:
    api = stripe_app
    sub = await subscribe(api, wire)
    evt = event("event_customer_subscription_updated", patched(sub, {"cancel_at_period_end": True}))
    wire.reply("GET", f"/v1/subscriptions/{SUB}", fixture("error_api"), status=500)
    wire.reply("GET", f"/v1/subscriptions/{SUB}", fixture("error_api"), status=500)
    wire.reply("GET", f"/v1/subscriptions/{SUB}", patched(sub, {"cancel_at_period_end": True}))
    status, out = await deliver(api, evt)
    assert status == 503 and out["code"] == "PAYMENT_PROVIDER_UNAVAILABLE", out
    status, out = await deliver(api, evt)
    assert status == 200 and out["handled"], "not recorded as handled the first time"
    assert (await api.call("GET", "/api/v1/billing/subscription"))[1]["cancelAtPeriodEnd"]


async def test_stripe_calls_are_retried_with_one_key_and_refusals_are_passed_on(stripe_app: Caller,
                                                                               wire: StripeWire) -> None:
    api = stripe_app
    wire.reply("POST", "/v1/customers", fixture("error_api"), status=500)
    wire.reply("POST", "/v1/customers", fixture("customer"))
    wire.reply("POST", "/v1/checkout/sessions", fixture("error_api"), status=409,
               headers={"Stripe-Should-Retry": "false"})
    status, out, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "growth"})
    assert status == 502 and out == {"error": "Stripe: An unknown error occurred",
                                     "code": "PAYMENT_PROVIDER_ERROR"}, out
    first, second = wire.calls("POST", "/v1/customers")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == f"mittr-customer-{api.client_id}"
    assert first.form == second.form
    assert len(wire.calls("POST", "/v1/checkout/sessions")) == 1, "Stripe-Should-Retry: false"

    wire.replies.clear()
    sub = await subscribe(api, wire)
    wire.reply("POST", f"/v1/subscriptions/{SUB}", fixture("error_card_declined"), status=402)
    status, out, _ = await api.call("POST", "/api/v1/billing/checkout", {"planId": "scale"})
    assert status == 502 and out["error"] == "Stripe: Your card has insufficient funds.", out
    assert len(wire.calls("POST", f"/v1/subscriptions/{SUB}")) == 1, "a 402 is not retried"
    status, now, _ = await api.call("GET", "/api/v1/billing/subscription")
    assert now["planId"] == "growth" and sub["items"]["data"][0]["price"]["id"] == PRICES[("growth", "monthly")]

    # a 429 is retried only when Stripe says so (the SDK's rule); either way it ends in a 503
    limited = {"error": {"message": "Too many requests", "type": "invalid_request_error", "code": "rate_limit"}}
    wire.replies.pop(("POST", f"/v1/subscriptions/{SUB}"))
    wire.reply("POST", f"/v1/subscriptions/{SUB}", limited, status=429)
    wire.clear()
    status, out, _ = await api.call("POST", "/api/v1/billing/cancel")
    assert status == 503 and out["code"] == "PAYMENT_PROVIDER_UNAVAILABLE" and len(wire.sent) == 1, out
    wire.reply("POST", f"/v1/subscriptions/{SUB}", limited, status=429, headers={"Stripe-Should-Retry": "true"})
    wire.clear()
    assert (await api.call("POST", "/api/v1/billing/cancel"))[0] == 503
    assert len(wire.sent) == 2 and wire.sent[0].headers["Idempotency-Key"] == wire.sent[1].headers["Idempotency-Key"]

    await wire.stop()               # Stripe out of reach: 503, nothing changed
    status, out, _ = await api.call("POST", "/api/v1/billing/cancel")
    assert status == 503 and out["code"] == "PAYMENT_PROVIDER_UNAVAILABLE", out
    assert not (await api.call("GET", "/api/v1/billing/subscription"))[1]["cancelAtPeriodEnd"]


async def test_the_webhook_is_not_there_without_the_stripe_provider(plans_app: Caller) -> None:  # noqa: F811
    body = json.dumps(fixture("event_invoice_paid")).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
    status, out, _ = await plans_app.call("POST", HOOK, raw=body, headers={"Stripe-Signature": header})
    assert status == 404 and out["code"] == "NOT_FOUND", out


async def test_preview_update_is_stripes_invoice_preview(stripe_app: Caller, wire: StripeWire) -> None:
    api = stripe_app
    await subscribe(api, wire)
    preview = fixture("invoice_preview")
    wire.reply("POST", "/v1/invoices/create_preview", preview)
    wire.clear()
    status, out, _ = await api.call("POST", "/api/v1/billing/preview-update", {"planId": "scale"})
    assert status == 200, out
    [sent] = wire.sent
    stripe_headers_ok(sent)
    at = int(sent.form["subscription_details[proration_date]"])
    assert sent.path == "/v1/invoices/create_preview" and abs(at - time.time()) < 60
    assert sent.form == {
        "customer": CUS, "subscription": SUB, "subscription_details[items][0][id]": SI,
        "subscription_details[items][0][price]": PRICES[("scale", "monthly")],
        "subscription_details[proration_behavior]": "always_invoice",
        "subscription_details[billing_cycle_anchor][type]": "now", "subscription_details[proration_date]": str(at)}
    new_period = preview["lines"]["data"][1]["period"]
    assert out == {"planId": "scale", "cycle": "monthly", "effective": "now",
                   "creditCents": 4737 + 500, "chargeCents": 19900, "dueTodayCents": 14663, "carriedCreditCents": 0,
                   "periodStart": iso(new_period["start"]), "periodEnd": iso(new_period["end"]),
                   "nextRenewal": {"at": iso(new_period["end"]), "amountCents": 19900}}, "Stripe's numbers"
    assert wire.calls("POST", f"/v1/subscriptions/{SUB}") == [], "a preview changes nothing"
    assert (await api.call("GET", "/api/v1/billing/subscription"))[1]["planId"] == "growth"

    # a downgrade waits for the renewal: nothing is prorated, so nothing is asked of Stripe
    wire.clear()
    status, down, _ = await api.call("POST", "/api/v1/billing/preview-update", {"planId": "free"})
    assert status == 200 and (down["effective"], down["dueTodayCents"]) == ("renewal", 0) and wire.sent == [], down

    wire.reply("POST", "/v1/invoices/create_preview", fixture("error_api"), status=400)
    status, err, _ = await api.call("POST", "/api/v1/billing/preview-update", {"planId": "scale", "cycle": "annual"})
    assert status == 502 and err == {"error": "Stripe: An unknown error occurred", "code": "PAYMENT_PROVIDER_ERROR"}
