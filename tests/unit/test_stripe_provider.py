"""The Stripe provider's pure parts: [billing.stripe] checking, the webhook
signature against the official stripe library's own signing, and reading Stripe's objects
(tests/fixtures/stripe, Stripe's shapes) into Mittr's rows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import stripe

from control.errors import BadRequest
from control.policy.plans import parse_catalogue
from control.services.account import check_settings
from control.services.billing_providers import provider_for
from control.services.billing_stripe import StripeProvider, verify_signature
from control.services.stripe_api import StripeError
from control.settings import Settings, SettingsError, load_settings
from tests.integration.plans_support import PLANS
from tests.support.stripe_wire import fixture, patched

KEY, HOOK = "sk_test_51MittrUnitKey", "whsec_mittrUnitSecret"
GOOD = f"""
[billing]
provider = "stripe"
[billing.stripe]
secret_key = "{KEY}"
webhook_secret = "{HOOK}"
[billing.stripe.prices]
growth = {{ monthly = "price_1SZmittrGrowthMonth", annual = "price_1SZmittrGrowthYear" }}
free = {{ monthly = "price_1SZmittrFreeMonth" }}
"""


def settings(tmp_path: Path, text: str = GOOD, env: dict[str, str] | None = None) -> Settings:
    plans, config = tmp_path / "plans.toml", tmp_path / "mittr.toml"
    plans.write_text(PLANS)
    config.write_text(text)
    return load_settings(config, env={"MITTR_ACCOUNT__PLANS_FILE": str(plans), **(env or {})})


@pytest.fixture
def provider(tmp_path: Path) -> StripeProvider:
    made = provider_for(settings(tmp_path))
    assert isinstance(made, StripeProvider)
    return made


def test_the_stripe_table_merges_over_its_defaults_and_secrets_come_from_the_environment(tmp_path: Path) -> None:
    s = settings(tmp_path, GOOD.replace(f'secret_key = "{KEY}"\n', ""),
                 env={"MITTR_BILLING__STRIPE__SECRET_KEY": "rk_live_fromTheEnvironment"})
    cfg = provider_for(s)
    assert isinstance(cfg, StripeProvider)
    assert cfg.config.secret_key == "rk_live_fromTheEnvironment" and cfg.config.api_base == "https://api.stripe.com"
    assert cfg.config.timeout_s == 20.0 and cfg.config.max_retries == 2
    assert cfg.config.prices[("growth", "annual")] == "price_1SZmittrGrowthYear"
    check_settings(s)


@pytest.mark.parametrize(("change", "message"), [
    ((f'secret_key = "{KEY}"', 'secret_key = "pk_test_publishable"'), "billing.stripe.secret_key"),
    ((f'webhook_secret = "{HOOK}"', 'webhook_secret = ""'), "billing.stripe.webhook_secret"),
    (("[billing.stripe.prices]", 'api_base = "ftp://x"\n[billing.stripe.prices]'), "billing.stripe.api_base"),
    (("[billing.stripe.prices]", "max_retries = 11\n[billing.stripe.prices]"), "billing.stripe.max_retries"),
    (("[billing.stripe.prices]", "timeout_s = 0\n[billing.stripe.prices]"), "billing.stripe.timeout_s"),
    (("free = {", "gold = {"), "billing.stripe.prices.gold: no such plan"),
    (('monthly = "price_1SZmittrFreeMonth"', 'weekly = "price_1SZmittrFreeMonth"'), "billing.stripe.prices.free"),
    (('monthly = "price_1SZmittrFreeMonth"', 'monthly = "prod_1"'), "billing.stripe.prices.free.monthly"),
    (('monthly = "price_1SZmittrFreeMonth"', 'monthly = "price_1SZmittrGrowthMonth"'), "another plan or cycle"),
    (('provider = "stripe"', 'provider = "paddle"'), "billing.provider: unknown provider 'paddle'"),
])
def test_a_stripe_setting_that_cannot_work_stops_the_start(tmp_path: Path, change: tuple[str, str],
                                                           message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        check_settings(settings(tmp_path, GOOD.replace(*change)))


def test_a_plan_without_a_price_cannot_be_bought(provider: StripeProvider) -> None:
    plans = {p.id: p for p in parse_catalogue(PLANS, "plans", "self-hosted").plans}
    assert provider.config.price(plans["growth"], "monthly") == "price_1SZmittrGrowthMonth"
    with pytest.raises(BadRequest, match="free \\(annual\\) has no Stripe price"):
        provider.config.price(plans["free"], "annual")


def signed(body: bytes, secret: str = HOOK, timestamp: int | None = None) -> dict[str, str]:
    return {"stripe-signature": stripe.WebhookSignature.generate_signature_header(body.decode(), secret,
                                                                                   timestamp=timestamp)}


def test_the_signature_is_checked_as_stripes_own_library_signs_it(provider: StripeProvider) -> None:
    body = json.dumps(fixture("event_invoice_paid")).encode()
    now = time.time()
    headers = signed(body)
    verify_signature(provider, body, headers, "https://x/billing/stripe/webhook", now)
    stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], HOOK)   # the library agrees
    refused: list[tuple[bytes, dict[str, str], float]] = [
        (body.replace(b"4900", b"4901"), headers, now),                         # the body changed
        (body, signed(body, "whsec_other"), now),                                 # another secret
        (body, signed(body, timestamp=int(now) - 301), now),                      # older than five minutes
        (body, {}, now),
    ]
    for raw, h, at in refused:
        with pytest.raises(BadRequest) as err:
            verify_signature(provider, raw, h, "https://x", at)
        assert err.value.code == "INVALID_SIGNATURE"
        if h:
            with pytest.raises(stripe.SignatureVerificationError):   # and so does the library
                stripe.Webhook.construct_event(raw.decode(), h["stripe-signature"], HOOK, tolerance=300)
    both = signed(body, "whsec_old")["stripe-signature"] + ",v1=" + headers["stripe-signature"].split("v1=")[1]
    verify_signature(provider, body, {"stripe-signature": both}, "https://x", now)


def test_a_subscription_reads_into_mittrs_columns(provider: StripeProvider) -> None:
    sub = fixture("subscription")
    state = provider.state_of(sub)
    assert state is not None
    assert (state.status, state.plan_id, state.cycle, state.cancel_at_period_end, state.scheduled) == (
        "active", "growth", "monthly", False, None)
    assert int(state.start.timestamp()) == sub["items"]["data"][0]["current_period_start"]
    assert int(state.end.timestamp()) == sub["items"]["data"][0]["current_period_end"]
    end = sub["items"]["data"][0]["current_period_end"]
    canceling = provider.state_of(patched(sub, {"cancel_at": end, "status": "past_due", "schedule": "sub_sched_1"}))
    assert canceling is not None and canceling.cancel_at_period_end and canceling.status == "active"
    assert canceling.scheduled is False, "kept until the schedule is read"
    assert provider.state_of(patched(sub, {"status": "unpaid"})).status == "canceled"  # type: ignore[union-attr]
    assert provider.state_of(patched(sub, {"status": "incomplete"})) is None, "not started"
    other = patched(sub["items"]["data"][0], {"price": {"id": "price_unknown"}})
    assert provider.state_of(patched(sub, {"items": {"data": [other]}})) is None


def test_a_schedule_says_the_plan_after_the_current_phase(provider: StripeProvider) -> None:
    schedule = fixture("subscription_schedule")
    assert provider.scheduled_in(schedule) is None
    end = schedule["current_phase"]["end_date"]
    nxt = {**schedule["phases"][0], "start_date": end, "end_date": end + 86400 * 365,
           "items": [{"price": "price_1SZmittrGrowthYear", "quantity": 1}]}
    assert provider.scheduled_in({**schedule, "phases": [*schedule["phases"], nxt]}) == ("growth", "annual")


def test_an_invoice_reads_with_lines_that_add_up(provider: StripeProvider) -> None:
    inv = provider.invoice_of(fixture("invoice"), ("free", "monthly"))
    assert inv is not None
    assert (inv.external_id, inv.reason, inv.status, inv.plan_id, inv.cycle, inv.total_cents) == (
        "in_1SZmittrInvoice01", "checkout", "paid", "growth", "monthly", 4900)
    taxed = provider.invoice_of(patched(fixture("invoice"), {"amount_due": 5390, "status": "open",
                                                              "billing_reason": "manual"}), ("free", "monthly"))
    assert taxed is not None and taxed.reason == "change" and taxed.status == "open"
    assert [line["amountCents"] for line in taxed.lines] == [4900, 490] and taxed.total_cents == 5390
    assert provider.invoice_of(patched(fixture("invoice"), {"status": "draft"}), ("free", "monthly")) is None
    unknown = patched(fixture("invoice"), {"lines": {"data": [patched(fixture("invoice")["lines"]["data"][0], {
        "pricing": {"price_details": {"price": "price_unknown"}}})]}})
    assert (provider.invoice_of(unknown, ("free", "monthly")) or inv).plan_id == "free", "the workspace's plan"


def test_an_invoice_preview_reads_into_the_proration_breakdown(provider: StripeProvider) -> None:
    preview, scale = fixture("invoice_preview"), "price_1SZmittrScaleMonth"
    p = provider.proration_of(preview, scale)
    charge = preview["lines"]["data"][1]
    assert (p.effective, p.credit_cents, p.charge_cents, p.due_today_cents, p.carried_cents, p.renewal_cents) == (
        "now", 4737 + 500, 19900, 14663, 0, 19900)
    assert (int(p.period_start.timestamp()), int(p.period_end.timestamp())) == (
        charge["period"]["start"], charge["period"]["end"])
    # a credit balance larger than the charge: nothing due, the rest carried and taken off the renewal
    rich = provider.proration_of(patched(preview, {"starting_balance": -20000, "amount_due": 0}), scale)
    assert (rich.credit_cents, rich.due_today_cents, rich.carried_cents, rich.renewal_cents) == (
        24737, 0, 20000 - 15163, 19900 - (20000 - 15163))
    assert rich.credit_cents - rich.charge_cents == rich.carried_cents, "no cent lost"
    with pytest.raises(StripeError, match="no line for price_1SZmittrScaleYear"):
        provider.proration_of(preview, "price_1SZmittrScaleYear")
