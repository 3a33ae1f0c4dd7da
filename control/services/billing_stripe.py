"""The Stripe billing provider ([billing] provider = "stripe"; docs/billing-stripe.md).

Stripe holds the subscription: it takes the payment (Checkout), renews, prorates, retries failed
payments and issues the invoices. Mittr's subscriptions and invoices rows mirror it, so that
/api/v1/billing/* and the plan limits work exactly as with the local provider:

- checkout: a Stripe customer per workspace (made once, with an Idempotency-Key naming the
  workspace), then a Checkout Session in subscription mode for the plan's configured price; the
  subscription starts when Stripe reports `checkout.session.completed`.
- plan change, as the local provider decides it (control/policy/proration.py): an upgrade applies
  now with Stripe's proration invoiced at once (`proration_behavior=always_invoice`) and a new
  period from now (`billing_cycle_anchor` now, as the local provider restarts the period); the
  change waits for the payment (`payment_behavior=pending_if_incomplete`). Anything else waits for
  the renewal in a subscription schedule (the current phase, then the new price), undone by
  releasing the schedule.
- cancel at period end and resume: `cancel_at_period_end` (a schedule is released first: Stripe
  does not let a subscription under a schedule be canceled directly, so canceling drops a
  scheduled change).
- portal: a Billing Portal session for the workspace's customer.
- preview-update of an upgrade: Stripe's invoice preview of that very update (`proration_of`), so the
  breakdown is Stripe's numbers; a change at the renewal prorates nothing and is previewed by Mittr.
- webhooks (api/handlers/billing_stripe.py): the `Stripe-Signature` is verified by the inbound
  Stripe preset's code (control/policy/inbound_verify.py), each event id is handled once
  (stripe_events, in the same transaction as its effect), and the event only says what changed: the
  subscription or invoice is read back from the API at the pinned version, so events arriving out of
  order, or twice, or shaped by another API version, all leave the latest state. A route of its own
  rather than a workspace's inbound endpoint: docs/billing-stripe.md says why.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import asyncpg
import orjson

from control.errors import BadRequest, InvalidState, NotFound
from control.policy.inbound_presets import catalogue as inbound_presets
from control.policy.inbound_verify import InboundRequest, VerifyError, verify
from control.policy.plans import Catalogue, Plan
from control.policy.proration import CYCLES, Cycle, Proration
from control.services.account import catalogue
from control.services.billing_providers import CheckoutStart, RemoteChange, RemoteInvoice, RemoteState
from control.services.stripe_api import StripeApi, StripeError, answer
from control.settings import Settings, SettingsError
from control.store.queries import q

if TYPE_CHECKING:
    from control.services.billing import BillingService

INTERVAL: dict[Cycle, str] = {"monthly": "month", "annual": "year"}
ACTIVE = frozenset({"active", "trialing", "past_due"})     # the plan applies (past_due: Stripe is retrying)
ENDED = frozenset({"canceled", "incomplete_expired", "unpaid", "paused"})   # back on the default plan
SUBSCRIPTION_EVENTS = frozenset({"customer.subscription.created", "customer.subscription.updated",
                                 "customer.subscription.deleted"})
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed"})
EVENTS = ("checkout.session.completed", *sorted(SUBSCRIPTION_EVENTS), *sorted(INVOICE_EVENTS))
REASONS = {"subscription_create": "checkout", "subscription_cycle": "renewal"}   # anything else: change
EVENT_KEEP = timedelta(days=30)
EVENT_PRUNE_BATCH = 100
WORKSPACE_KEY = "mittr_workspace_id"

log = logging.getLogger("mittr.billing.stripe")


@dataclass(frozen=True, slots=True)
class StripeConfig:
    secret_key: str
    webhook_secret: str
    api_base: str
    return_url: str
    timeout_s: float
    max_retries: int
    prices: dict[tuple[str, Cycle], str]            # (plan id, cycle) -> price id

    @classmethod
    def from_settings(cls, settings: Settings, plans: Catalogue) -> StripeConfig:
        """[billing.stripe], checked (a SettingsError names the key)."""
        raw = settings.section("billing").get("stripe")
        if not isinstance(raw, dict):
            raise SettingsError("billing.stripe: expected a table")
        key, hook = raw.get("secret_key"), raw.get("webhook_secret")
        if not isinstance(key, str) or not key.startswith(("sk_", "rk_")):
            raise SettingsError("billing.stripe.secret_key: a Stripe secret key (sk_...) or restricted key (rk_...)")
        if not isinstance(hook, str) or not hook.startswith("whsec_"):
            raise SettingsError("billing.stripe.webhook_secret: the webhook endpoint's signing secret (whsec_...)")
        for name in ("api_base", "return_url"):
            value = raw.get(name)
            parts = urlsplit(value) if isinstance(value, str) else None
            if parts is None or (value and (parts.scheme not in ("http", "https") or not parts.hostname)):
                raise SettingsError(f"billing.stripe.{name}: expected an http(s) URL")
        if not raw["api_base"]:
            raise SettingsError("billing.stripe.api_base: required")
        timeout, retries = raw.get("timeout_s"), raw.get("max_retries")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 300:
            raise SettingsError("billing.stripe.timeout_s: seconds, more than 0 and at most 300")
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
            raise SettingsError("billing.stripe.max_retries: an integer from 0 to 10")
        return cls(key, hook, str(raw["api_base"]), str(raw["return_url"]), float(timeout), retries,
                   parse_prices(raw.get("prices"), plans))

    def price(self, plan: Plan, cycle: Cycle) -> str:
        found = self.prices.get((plan.id, cycle))
        if found is None:
            raise BadRequest(f"planId: {plan.id} ({cycle}) has no Stripe price; the operator sets it in "
                             "[billing.stripe.prices]")
        return found

    def plan_of(self, price_id: str | None) -> tuple[str, Cycle] | None:
        for plan_cycle, price in self.prices.items():
            if price == price_id:
                return plan_cycle
        return None


def parse_prices(raw: Any, plans: Catalogue) -> dict[tuple[str, Cycle], str]:
    """`plan = { monthly = "price_...", annual = "price_..." }` for plans of the catalogue; one
    price names one plan and cycle (a webhook's price must say which plan it is)."""
    if not isinstance(raw, dict):
        raise SettingsError("billing.stripe.prices: expected a table of plan ids")
    out: dict[tuple[str, Cycle], str] = {}
    for plan_id, cycles in raw.items():
        where = f"billing.stripe.prices.{plan_id}"
        if plans.get(plan_id) is None:
            raise SettingsError(f"{where}: no such plan in the catalogue")
        if not isinstance(cycles, dict) or not cycles or set(cycles) - set(CYCLES):
            raise SettingsError(f"{where}: expected {{ monthly = \"price_...\", annual = \"price_...\" }}")
        for cycle, price in cycles.items():
            if not isinstance(price, str) or not price.startswith("price_") or len(price) > 255:
                raise SettingsError(f"{where}.{cycle}: expected a Stripe price id (price_...)")
            if price in out.values():
                raise SettingsError(f"{where}.{cycle}: {price} is given to another plan or cycle too")
            out[(plan_id, cast(Cycle, cycle))] = price
    return out


def _id(value: Any) -> str | None:
    """An expandable field's id (Stripe sends an id, or the object when expanded)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _at(seconds: Any) -> datetime:
    return datetime.fromtimestamp(int(seconds), UTC)


def _item(sub: dict[str, Any]) -> dict[str, Any]:
    items = (sub.get("items") or {}).get("data") or []
    if not items:
        raise StripeError(f"subscription {sub.get('id')} has no items")
    return cast(dict[str, Any], items[0])


def _line_price(line: dict[str, Any]) -> str | None:
    """A line's price: `pricing.price_details.price` (API versions since 2025-03-31), else `price`."""
    details = ((line.get("pricing") or {}).get("price_details")) or {}
    return _id(details.get("price")) or _id(line.get("price"))


def _line_is_proration(line: dict[str, Any]) -> bool:
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
    return bool(details.get("proration", line.get("proration", False)))


class StripeProvider:
    name = "stripe"
    invoice_status = "open"
    remote = True

    def __init__(self, settings: Settings) -> None:
        self.config = StripeConfig.from_settings(settings, catalogue(settings))
        self.api = StripeApi(self.config.secret_key, self.config.api_base, self.config.timeout_s,
                             self.config.max_retries)

    async def aclose(self) -> None:
        await self.api.close()

    def _back(self, origin: str) -> str:
        return (self.config.return_url or f"{origin}/").strip()

    # -- the workspace's Stripe objects -----------------------------------------------------------

    async def customer(self, conn: asyncpg.Connection, client_id: uuid.UUID) -> asyncpg.Record:
        """The workspace's customer, made at Stripe on first need (the Idempotency-Key names the
        workspace, so two requests at once, or a retry after a rollback, make one customer)."""
        row = await conn.fetchrow(q("stripe_customer_get"), client_id)
        if row is not None:
            return row
        made = await answer(self.api.v1.customers.create_async(
            {"description": f"Mittr workspace {client_id}", "metadata": {WORKSPACE_KEY: str(client_id)}},
            {"idempotency_key": f"mittr-customer-{client_id}"}))
        await conn.execute(q("stripe_customer_insert"), client_id, made["id"])
        found: asyncpg.Record = await conn.fetchrow(q("stripe_customer_get"), client_id)
        return found

    async def _subscribed(self, conn: asyncpg.Connection, client_id: uuid.UUID) -> asyncpg.Record:
        ids = await conn.fetchrow(q("stripe_customer_get"), client_id)
        if ids is None or ids["subscription_id"] is None or ids["subscription_item_id"] is None:
            raise InvalidState("Stripe has not reported this workspace's subscription yet; try again shortly")
        return ids

    async def remember(self, conn: asyncpg.Connection, client_id: uuid.UUID, sub: dict[str, Any]) -> None:
        item = _item(sub)
        await conn.execute(q("stripe_customer_set_subscription"), client_id, sub["id"], item["id"],
                           _id(item.get("price")), _id(sub.get("schedule")))

    def state_of(self, sub: dict[str, Any]) -> RemoteState | None:
        """Mittr's columns for a Stripe subscription; None when it has not started (incomplete) or
        its price is none of the configured ones."""
        status = sub.get("status")
        if status not in ACTIVE and status not in ENDED:
            return None
        item = _item(sub)
        plan_cycle = self.config.plan_of(_id(item.get("price")))
        if plan_cycle is None:
            log.warning("stripe subscription with an unknown price", extra={"subscription": sub.get("id"),
                                                                             "price": _id(item.get("price"))})
            return None
        start = int(item.get("current_period_start", sub.get("current_period_start", 0)))
        end = int(item.get("current_period_end", sub.get("current_period_end", 0)))
        cancel_at = sub.get("cancel_at")
        canceling = bool(sub.get("cancel_at_period_end")) or (cancel_at is not None and int(cancel_at) <= end)
        return RemoteState("active" if status in ACTIVE else "canceled", plan_cycle[0], plan_cycle[1], _at(start),
                           _at(end), canceling, False if _id(sub.get("schedule")) else None)

    def scheduled_in(self, schedule: dict[str, Any]) -> tuple[str, Cycle] | None:
        """The plan a schedule moves to after its current phase (None: it moves nowhere)."""
        current = schedule.get("current_phase") or {}
        after = [p for p in schedule.get("phases") or [] if current and p.get("start_date", 0) >= current["end_date"]]
        if not after:
            return None
        items = min(after, key=lambda p: p["start_date"]).get("items") or [{}]
        return self.config.plan_of(_id(items[0].get("price")))

    def invoice_of(self, inv: dict[str, Any], fallback: tuple[str, Cycle]) -> RemoteInvoice | None:
        """Mittr's invoice for a finalized Stripe invoice (a draft is not one yet): its lines as
        Stripe shows them, plus one line for what tax, discounts or the customer's balance changed,
        so the lines add up to what is due."""
        status = inv.get("status")
        if status in (None, "draft"):
            return None
        lines = (inv.get("lines") or {}).get("data") or []
        amounts = [int(line["amount"]) for line in lines]
        shown: list[dict[str, Any]] = [{"description": str(line.get("description") or "Subscription"),
                                        "amountCents": amount} for line, amount in zip(lines, amounts, strict=True)]
        total = max(0, int(inv.get("amount_due", inv.get("total", 0))))
        if sum(amounts) != total:
            shown.append({"description": "Tax, discounts and account balance", "amountCents": total - sum(amounts)})
        plan_cycle: tuple[str, Cycle] | None = None
        start, end = int(inv.get("period_start", 0)), int(inv.get("period_end", 0))
        for line in lines:
            found = self.config.plan_of(_line_price(line))
            if found is not None and not (plan_cycle is not None and _line_is_proration(line)):
                plan_cycle = found
                period = line.get("period") or {}
                start, end = int(period.get("start", start)), int(period.get("end", end))
        plan_id, cycle = plan_cycle or fallback
        return RemoteInvoice(inv["id"], cast(Any, REASONS.get(str(inv.get("billing_reason")), "change")),
                             "paid" if status == "paid" else "void" if status == "void" else "open",
                             plan_id, cycle, _at(start), _at(end), shown, total)

    @staticmethod
    def proration_of(preview: dict[str, Any], price: str) -> Proration:
        """preview-update in Stripe's numbers, from its preview of the invoice an upgrade issues
        (always_invoice, a new period from now): the credit is its unused-time lines plus any
        customer credit balance it applies, the charge its lines for the new price, due today its
        `amount_due` (so tax and discounts are in), the carried credit what the invoice leaves on the
        balance, and the renewal the new price's line (one period at Stripe's price) less that."""
        lines = (preview.get("lines") or {}).get("data") or []
        new = [line for line in lines if _line_price(line) == price and not _line_is_proration(line)]
        if not new:
            raise StripeError(f"the invoice preview has no line for {price}")
        amounts = [int(line["amount"]) for line in lines]
        balance = int(preview.get("starting_balance") or 0)          # negative: credit held
        credit = -sum(a for a in amounts if a < 0) + max(0, -balance)
        carried = max(0, -(int(preview["total"]) + balance))
        renewal = sum(int(line["amount"]) for line in new)
        period = new[0].get("period") or {}
        return Proration("now", credit, sum(a for a in amounts if a > 0), int(preview["amount_due"]), carried,
                         _at(period["start"]), _at(period["end"]), max(renewal - carried, 0))

    # -- what the API asks for ---------------------------------------------------------------------

    async def checkout(self, conn: asyncpg.Connection, client_id: uuid.UUID, plan: Plan, cycle: Cycle, origin: str,
                       state: str) -> CheckoutStart:
        price = self.config.price(plan, cycle)
        customer = await self.customer(conn, client_id)
        back = self._back(origin)
        glue = "&" if "?" in back else "?"
        session = await answer(self.api.v1.checkout.sessions.create_async({
            "mode": "subscription", "customer": customer["customer_id"], "client_reference_id": str(client_id),
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": f"{back}{glue}checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{back}{glue}checkout=canceled",
            "metadata": {WORKSPACE_KEY: str(client_id)},
            "subscription_data": {"metadata": {WORKSPACE_KEY: str(client_id)}}}))
        if not isinstance(session.get("url"), str):
            raise StripeError("the Checkout Session has no URL")
        return CheckoutStart(activate_now=False, url=session["url"])

    async def portal_url(self, conn: asyncpg.Connection, client_id: uuid.UUID, origin: str, state: str) -> str:
        customer = await self.customer(conn, client_id)
        session = await answer(self.api.v1.billing_portal.sessions.create_async(
            {"customer": customer["customer_id"], "return_url": self._back(origin)}))
        return str(session["url"])

    async def _release(self, conn: asyncpg.Connection, ids: asyncpg.Record) -> None:
        """Detach the schedule: the subscription stays as it is now, the change it held is dropped."""
        await answer(self.api.v1.subscription_schedules.release_async(ids["schedule_id"]))
        await conn.execute(q("stripe_customer_set_schedule"), ids["client_id"], None)

    async def change(self, conn: asyncpg.Connection, row: asyncpg.Record, plan: Plan, cycle: Cycle,
                     now: bool) -> RemoteChange:
        client_id = row["client_id"]
        ids = await self._subscribed(conn, client_id)
        price = self.config.price(plan, cycle)
        if ids["schedule_id"] is not None:
            await self._release(conn, ids)
        if now:
            # billing_cycle_anchor is an object ({type: now}) since 2026-09-30.endive; the pinned
            # version is later. Pending updates accept it, with items, proration and expand.
            sub = await answer(self.api.v1.subscriptions.update_async(ids["subscription_id"], {
                "items": [{"id": ids["subscription_item_id"], "price": price}],
                "proration_behavior": "always_invoice", "billing_cycle_anchor": {"type": "now"},
                "payment_behavior": "pending_if_incomplete", "expand": ["latest_invoice"]}))
            await self.remember(conn, client_id, sub)
            latest = sub.get("latest_invoice")
            state = self.state_of(sub)
            invoice = self.invoice_of(latest, (plan.id, cycle)) if isinstance(latest, dict) else None
            pay_url = latest.get("hosted_invoice_url") if sub.get("pending_update") and isinstance(latest, dict) \
                else None
            return RemoteChange(state, invoice, pay_url)
        schedule = await answer(self.api.v1.subscription_schedules.create_async(
            {"from_subscription": ids["subscription_id"]}))
        phase = (schedule.get("phases") or [{}])[0]
        current = _id(((phase.get("items") or [{}])[0]).get("price")) or ids["price_id"]
        await answer(self.api.v1.subscription_schedules.update_async(schedule["id"], {
            "end_behavior": "release", "proration_behavior": "none",
            "phases": [{"items": [{"price": current, "quantity": 1}], "start_date": phase["start_date"],
                        "end_date": phase["end_date"]},
                       {"items": [{"price": price, "quantity": 1}],
                        "duration": {"interval": INTERVAL[cycle], "interval_count": 1}}]}))
        await conn.execute(q("stripe_customer_set_schedule"), client_id, schedule["id"])
        return RemoteChange(None)

    async def set_cancel(self, conn: asyncpg.Connection, row: asyncpg.Record, cancel: bool) -> RemoteState:
        ids = await self._subscribed(conn, row["client_id"])
        if cancel and ids["schedule_id"] is not None:
            await self._release(conn, ids)
        sub = await answer(self.api.v1.subscriptions.update_async(ids["subscription_id"],
                                                                  {"cancel_at_period_end": cancel}))
        await self.remember(conn, row["client_id"], sub)
        state = self.state_of(sub)
        if state is None:
            raise StripeError(f"subscription {sub.get('id')} is {sub.get('status')}")
        return state

    async def unschedule(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        ids = await self._subscribed(conn, row["client_id"])
        if ids["schedule_id"] is not None:
            await self._release(conn, ids)

    async def preview(self, conn: asyncpg.Connection, row: asyncpg.Record, plan: Plan, cycle: Cycle,
                      at: datetime) -> Proration:
        """Stripe's invoice preview of the upgrade `change` makes (same items, proration and anchor),
        prorated as of `at` (Stripe prorates by the second), changing nothing."""
        ids = await self._subscribed(conn, row["client_id"])
        price = self.config.price(plan, cycle)
        preview = await answer(self.api.v1.invoices.create_preview_async({
            "customer": ids["customer_id"], "subscription": ids["subscription_id"],
            "subscription_details": {"items": [{"id": ids["subscription_item_id"], "price": price}],
                                     "proration_behavior": "always_invoice", "billing_cycle_anchor": {"type": "now"},
                                     "proration_date": int(at.timestamp())}}))
        return self.proration_of(preview, price)

    # -- what Stripe reports -------------------------------------------------------------------------

    async def sync(self, conn: asyncpg.Connection, client_id: uuid.UUID, sub_id: str) -> RemoteState | None:
        """The subscription as Stripe has it now, its ids remembered; None when it is not the
        workspace's (an older one's late event) or says nothing Mittr can apply."""
        sub = await answer(self.api.v1.subscriptions.retrieve_async(sub_id))
        ids = await conn.fetchrow(q("stripe_customer_get"), client_id)
        if ids is not None and ids["subscription_id"] not in (None, sub_id) and sub.get("status") not in ACTIVE:
            return None
        state = self.state_of(sub)
        if state is None:
            return None
        await self.remember(conn, client_id, sub)
        schedule = _id(sub.get("schedule"))
        if schedule is not None:
            state = replace(state, scheduled=self.scheduled_in(
                await answer(self.api.v1.subscription_schedules.retrieve_async(schedule))))
        return state

    async def client_of(self, conn: asyncpg.Connection, obj: dict[str, Any]) -> uuid.UUID | None:
        row = await conn.fetchrow(q("stripe_customer_by_id"), _id(obj.get("customer")))
        return row["client_id"] if row is not None else None


def parse_event(body: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("body: not JSON") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"].startswith("evt_") \
            or len(event["id"]) > 255 or not isinstance(event.get("type"), str) \
            or not isinstance((event.get("data") or {}).get("object"), dict):
        raise BadRequest("body: not a Stripe event")
    return event


def verify_signature(provider: StripeProvider, body: bytes, headers: dict[str, str], url: str, now: float) -> None:
    """The inbound Stripe preset's verification (t= and v1= pairs, HMAC-SHA256 of `{t}.{body}`, any
    v1 may match, five minutes' tolerance, constant-time): one implementation for both paths."""
    preset = inbound_presets()["stripe"]
    try:
        verify(preset.mode, preset.params, {"secret": provider.config.webhook_secret},
               InboundRequest(body, headers, url, now))
    except VerifyError as exc:
        raise BadRequest(f"webhook signature: {exc}", code="INVALID_SIGNATURE") from exc


def stripe_of(provider: object) -> StripeProvider:
    if not isinstance(provider, StripeProvider):
        raise NotFound("Stripe billing is not configured on this server")
    return provider


async def receive(billing: BillingService, body: bytes, headers: dict[str, str], url: str,
                  now: float) -> dict[str, Any]:
    """One webhook delivery: verified, then handled once per event id, in one transaction with its
    effect (a failure rolls both back, and Stripe's retry handles it again)."""
    provider = stripe_of(billing.provider)
    verify_signature(provider, body, headers, url, now)
    event = parse_event(body)
    kind, obj = event["type"], event["data"]["object"]
    async with billing.pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(q("stripe_event_insert"), event["id"], kind[:255], None) is None:
            return {"received": True, "duplicate": True}
        await conn.execute(q("stripe_events_prune"), datetime.now(UTC) - EVENT_KEEP, EVENT_PRUNE_BATCH)
        client_id = await _handle(billing, provider, conn, kind, obj)
        if client_id is not None:
            await conn.execute(q("stripe_event_set_client"), event["id"], client_id)
    return {"received": True, "handled": client_id is not None}


async def _handle(billing: BillingService, provider: StripeProvider, conn: asyncpg.Connection, kind: str,
                  obj: dict[str, Any]) -> uuid.UUID | None:
    """The workspace an event changed, or None when it is not one Mittr acts on."""
    if kind == "checkout.session.completed":
        return await _checkout_completed(billing, provider, conn, obj)
    if kind not in SUBSCRIPTION_EVENTS and kind not in INVOICE_EVENTS:
        return None
    client_id = await provider.client_of(conn, obj)
    if client_id is None:
        log.info("stripe event for a customer of no workspace", extra={"type": kind, "object": obj.get("id")})
        return None
    await conn.execute(q("billing_client_xact_lock"), client_id)
    if kind in SUBSCRIPTION_EVENTS:
        state = await provider.sync(conn, client_id, str(obj["id"]))
        if state is not None:
            await billing.apply_remote(conn, client_id, state, "stripe webhook")
        return client_id
    inv = await answer(provider.api.v1.invoices.retrieve_async(str(obj["id"])))
    remote = provider.invoice_of(inv, await billing.plan_cycle(conn, client_id))
    if remote is not None:
        await billing.record_invoice(conn, client_id, remote)
    return client_id


async def _checkout_completed(billing: BillingService, provider: StripeProvider, conn: asyncpg.Connection,
                              session: dict[str, Any]) -> uuid.UUID | None:
    """A subscription bought through Checkout: the session names the workspace (client_reference_id)
    and its customer, which must be the one made for the workspace (or, if none was, becomes it)."""
    sub_id, customer = _id(session.get("subscription")), _id(session.get("customer"))
    try:
        client_id = uuid.UUID(str(session.get("client_reference_id")))
    except ValueError:
        return None
    if session.get("mode") != "subscription" or sub_id is None or customer is None:
        return None
    await conn.execute(q("billing_client_xact_lock"), client_id)
    if await conn.fetchrow(q("client_plan"), client_id) is None:
        return None                            # no such workspace (any more)
    ids = await conn.fetchrow(q("stripe_customer_get"), client_id)
    if ids is None:
        await conn.execute(q("stripe_customer_insert"), client_id, customer)
    elif ids["customer_id"] != customer:
        log.warning("checkout session for another customer than the workspace's",
                    extra={"session": session.get("id"), "workspace": str(client_id)})
        return None
    state = await provider.sync(conn, client_id, sub_id)
    if state is not None:
        await billing.apply_remote(conn, client_id, state, "stripe checkout")
    return client_id
