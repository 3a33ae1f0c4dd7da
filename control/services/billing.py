"""Subscriptions and invoices: checkout, plan changes with proration, cancel/resume, undoing a
scheduled change, and the period rollover. The state lives in Postgres (migration 022) whatever the
provider (control/services/billing_providers.py); the arithmetic is control/policy/proration.py.

Every mutation runs in one transaction under the subscription's row lock and writes its audit row
there. With a remote provider (Stripe) the change is made there first, in that transaction, and what
the provider reports (its answer, then its webhooks: `apply_remote`, `record_invoice`) is recorded;
such a provider renews and invoices itself, so the rollover leaves its subscriptions alone.

Before any read or change, a subscription whose period has ended is rolled over (renewed on its
plan or its scheduled one, with a renewal invoice; or ended when it was canceled): the same
function serves the sweep (`rollover_due`), and a renewal invoice is unique per period, so running
it twice changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg

from control.errors import BadRequest, InvalidState, NotFound
from control.jsonfmt import iso
from control.periodic import Periodic
from control.policy.plans import Catalogue, Plan, plan_json
from control.policy.proration import CYCLES, Cycle, Proration, apply_credit, period_end, price, prorate
from control.services import audit
from control.services.account import catalogue
from control.services.billing_providers import (
    BillingProvider,
    LocalProvider,
    PageKind,
    PageLink,
    RemoteBillingProvider,
    RemoteInvoice,
    RemoteState,
    provider_for,
)
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object

CHECKOUT_FIELDS = frozenset({"planId", "cycle"})
MAX_ROLLOVERS = 120            # periods caught up in one go (ten years of months)
OVERVIEW_INVOICES = 10
ROLLOVER_BATCH = 100
REMOTE_PROVIDERS = ["stripe"]  # they renew their subscriptions themselves: never rolled over here

log = logging.getLogger("mittr.billing")


def parse_change(body: Any, plans: Catalogue) -> tuple[Plan, Cycle]:
    data = need_object(body)
    unknown = sorted(set(data) - CHECKOUT_FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field")
    plan_id = data.get("planId")
    if not isinstance(plan_id, str):
        raise BadRequest("planId: required (a plan id from GET /api/v1/billing/plans)")
    plan = plans.get(plan_id)
    if plan is None:
        raise BadRequest(f"planId: unknown plan {plan_id[:64]!r}")
    cycle = data.get("cycle", "monthly")
    if cycle is None:
        cycle = "monthly"
    if cycle not in CYCLES:
        raise BadRequest("cycle: expected monthly or annual")
    return plan, cast(Cycle, cycle)


def subscription_json(row: asyncpg.Record | None, plans: Catalogue, current_plan: Plan) -> dict[str, Any]:
    if row is None:
        return {"status": "none", "provider": None, "planId": current_plan.id, "planName": current_plan.name,
                "cycle": None, "currentPeriodStart": None, "currentPeriodEnd": None, "cancelAtPeriodEnd": False,
                "scheduledChange": None, "creditCents": 0}
    plan = plans.plan_for(row["plan_id"])
    scheduled = None
    if row["scheduled_plan_id"] is not None:
        scheduled = {"planId": row["scheduled_plan_id"], "cycle": row["scheduled_cycle"],
                     "effectiveAt": iso(row["current_period_end"])}
    return {"status": row["status"], "provider": row["provider"], "planId": plan.id, "planName": plan.name,
            "cycle": row["cycle"], "currentPeriodStart": iso(row["current_period_start"]),
            "currentPeriodEnd": iso(row["current_period_end"]), "cancelAtPeriodEnd": row["cancel_at_period_end"],
            "scheduledChange": scheduled, "creditCents": row["credit_cents"]}


def invoice_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "number": row["number"], "reason": row["reason"], "status": row["status"],
            "provider": row["provider"], "planId": row["plan_id"], "cycle": row["cycle"],
            "periodStart": iso(row["period_start"]), "periodEnd": iso(row["period_end"]),
            "lines": row["lines"], "totalCents": row["total_cents"], "createdAt": iso(row["created_at"])}


def proration_json(p: Proration, plan: Plan, cycle: Cycle) -> dict[str, Any]:
    return {"planId": plan.id, "cycle": cycle, "effective": p.effective, "creditCents": p.credit_cents,
            "chargeCents": p.charge_cents, "dueTodayCents": p.due_today_cents, "carriedCreditCents": p.carried_cents,
            "periodStart": iso(p.period_start), "periodEnd": iso(p.period_end),
            "nextRenewal": {"at": iso(p.period_start if p.effective == "renewal" else p.period_end),
                            "amountCents": p.renewal_cents}}


def _system(client_id: uuid.UUID, label: str = "billing rollover") -> Principal:
    """The rollover (and a local billing page) acts for nobody: the audit log shows it as the system."""
    return Principal(client_id, None, frozenset(), None, label=label)


def page_state(row: asyncpg.Record | None) -> str:
    """The subscription's state a local page link is made for: any change to the row changes it."""
    return "none" if row is None else f"{row['status']}@{row['updated_at'].isoformat()}"


class BillingService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings,
                 provider: BillingProvider | None = None) -> None:
        self.pool = pool
        self.plans = catalogue(settings)
        self.provider = provider or provider_for(settings)
        self.rollover_interval_s = float(settings.section("billing").get("rollover_interval_s", 60.0))
        self._job = Periodic("billing rollover", self.tick, self.rollover_interval_s)

    # -- reads --------------------------------------------------------------------------------------

    async def _current(self, conn: asyncpg.Connection, client_id: uuid.UUID, now: datetime) -> asyncpg.Record | None:
        """The workspace's subscription, locked and rolled over to `now` (the caller's transaction)."""
        row = await conn.fetchrow(q("subscription_lock"), client_id)
        if row is not None and row["status"] == "active" and row["current_period_end"] <= now \
                and row["provider"] not in REMOTE_PROVIDERS:
            row = await self._roll(conn, row, now)
        return row

    def _remote(self, row: asyncpg.Record) -> RemoteBillingProvider | None:
        """The provider at which changes to this subscription are made (and only then recorded
        here); None when Mittr itself holds it."""
        provider = self.provider
        if isinstance(provider, RemoteBillingProvider) and row["provider"] == provider.name:
            return provider
        return None

    async def _workspace_plan(self, conn: asyncpg.Connection, client_id: uuid.UUID) -> Plan:
        found = await conn.fetchrow(q("client_plan"), client_id)
        return self.plans.plan_for(found["plan_id"] if found else None)

    async def subscription(self, who: Principal, now: datetime | None = None) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._current(conn, who.client_id, now or datetime.now(UTC))
            return subscription_json(row, self.plans, await self._workspace_plan(conn, who.client_id))

    async def invoices(self, who: Principal, limit: int, before: int | None) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._current(conn, who.client_id, datetime.now(UTC))
            rows = await conn.fetch(q("invoice_list"), who.client_id, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"data": [invoice_json(r) for r in rows],
                "pagination": {"hasMore": more, "cursor": str(rows[-1]["number"]) if more else None}}

    def plan_list(self) -> dict[str, Any]:
        return {"data": [plan_json(p) for p in self.plans.plans]}

    async def overview(self, who: Principal) -> dict[str, Any]:
        return {"subscription": await self.subscription(who),
                "invoices": (await self.invoices(who, OVERVIEW_INVOICES, None))["data"],
                "plans": self.plan_list()["data"]}

    async def preview(self, who: Principal, body: Any, now: datetime | None = None) -> dict[str, Any]:
        plan, cycle = parse_change(body, self.plans)
        at = now or datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            row = self._need_active(await self._current(conn, who.client_id, at))
            p = self._prorate(row, plan, cycle, at)
            remote = self._remote(row)
            if remote is not None and p.effective == "now":     # the provider prorates: its numbers
                p = await remote.preview(conn, row, plan, cycle, at)
            return proration_json(p, plan, cycle)

    # -- changes ------------------------------------------------------------------------------------

    def _need_active(self, row: asyncpg.Record | None) -> asyncpg.Record:
        if row is None or row["status"] != "active":
            raise InvalidState("no active subscription; start one with POST /api/v1/billing/checkout")
        return row

    def _prorate(self, row: asyncpg.Record, plan: Plan, cycle: Cycle, now: datetime) -> Proration:
        if row["plan_id"] == plan.id and row["cycle"] == cycle:
            raise InvalidState(f"the subscription is already on {plan.id} ({cycle})")
        return prorate(self.plans.plan_for(row["plan_id"]), row["cycle"], row["current_period_start"],
                       row["current_period_end"], row["credit_cents"], plan, cycle, now)

    async def checkout(self, who: Principal, body: Any, origin: str, now: datetime | None = None) -> dict[str, Any]:
        """Start a subscription (the provider may activate it at once, or return a URL to pay at), or
        change the active one: an upgrade now with its proration invoice, anything else scheduled
        for the renewal."""
        plan, cycle = parse_change(body, self.plans)
        at = now or datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._current(conn, who.client_id, at)
            if row is not None and row["status"] == "active":
                return await self._change(conn, who, row, plan, cycle, at)
            start = await self.provider.checkout(conn, who.client_id, plan, cycle, origin, page_state(row))
            if not start.activate_now:
                return {"status": "pending", "url": start.url, "subscription": subscription_json(
                    row, self.plans, await self._workspace_plan(conn, who.client_id)), "invoice": None}
            return await self._activate(conn, who, row, plan, cycle, at)

    async def _activate(self, conn: asyncpg.Connection, who: Principal, row: asyncpg.Record | None, plan: Plan,
                        cycle: Cycle, at: datetime) -> dict[str, Any]:
        """A new period on `plan` from `at`, with its checkout invoice (less any carried credit)."""
        credit = row["credit_cents"] if row is not None else 0
        total, credit = apply_credit(price(plan, cycle), credit)
        end = period_end(at, cycle)
        new = await conn.fetchrow(q("subscription_upsert"), who.client_id, self.provider.name, plan.id, cycle,
                                  at, end, credit)
        invoice = await self._invoice(conn, who.client_id, "checkout", plan, cycle, at, end,
                                      self._lines(plan, cycle, total), total)
        await conn.execute(q("set_client_plan"), who.client_id, plan.id)
        out = subscription_json(new, self.plans, plan)
        await audit.record(conn, who, "create", "subscription", who.client_id,
                           before=subscription_json(row, self.plans, plan) if row else None,
                           after={**out, "invoice": invoice_json(invoice) if invoice else None})
        return {"status": "active", "url": None, "subscription": out,
                "invoice": invoice_json(invoice) if invoice else None}

    async def _change(self, conn: asyncpg.Connection, who: Principal, row: asyncpg.Record, plan: Plan,
                      cycle: Cycle, at: datetime) -> dict[str, Any]:
        p = self._prorate(row, plan, cycle, at)
        before = subscription_json(row, self.plans, plan)
        invoice = None
        remote = self._remote(row)
        if remote is not None:
            return await self._change_remote(conn, who, remote, row, plan, cycle, p)
        if p.effective == "now":
            old = self.plans.plan_for(row["plan_id"])
            new = await self._update(conn, row, plan_id=plan.id, cycle=cycle, start=p.period_start,
                                     end=p.period_end, cancel=False, scheduled=None, credit=p.carried_cents)
            lines = [{"description": f"Unused time on {old.name} ({row['cycle']})", "amountCents": -p.credit_cents},
                     self._line(plan, cycle, p.charge_cents)]
            invoice = await self._invoice(conn, who.client_id, "change", plan, cycle, p.period_start, p.period_end,
                                          lines, p.due_today_cents)
            await conn.execute(q("set_client_plan"), who.client_id, plan.id)
            action = "update"
        else:
            new = await self._update(conn, row, scheduled=(plan.id, cycle))
            action = "schedule"
        out = subscription_json(new, self.plans, plan)
        await audit.record(conn, who, action, "subscription", who.client_id, before=before,
                           after={**out, "proration": proration_json(p, plan, cycle),
                                  "invoice": invoice_json(invoice) if invoice else None})
        return {"status": "active" if p.effective == "now" else "scheduled", "url": None, "subscription": out,
                "proration": proration_json(p, plan, cycle), "invoice": invoice_json(invoice) if invoice else None}

    async def _change_remote(self, conn: asyncpg.Connection, who: Principal, remote: RemoteBillingProvider,
                             row: asyncpg.Record, plan: Plan, cycle: Cycle, p: Proration) -> dict[str, Any]:
        """The same decision as the local provider's (upgrade now, anything else at renewal), made at
        the provider: its proration invoice and the period it reports are what is recorded."""
        before = subscription_json(row, self.plans, plan)
        done = await remote.change(conn, row, plan, cycle, p.effective == "now")
        if done.state is not None:
            new = await self._set_state(conn, row["client_id"], row, done.state) or row
            action = "update"
        else:
            new = await self._update(conn, row, scheduled=(plan.id, cycle))
            action = "schedule"
        invoice = await self.record_invoice(conn, row["client_id"], done.invoice) if done.invoice else None
        out = subscription_json(new, self.plans, self.plans.plan_for(new["plan_id"]))
        extra = {"proration": proration_json(p, plan, cycle), "invoice": invoice_json(invoice) if invoice else None}
        await audit.record(conn, who, action, "subscription", row["client_id"], before=before, after={**out, **extra})
        status = "pending" if done.pay_url else "active" if p.effective == "now" else "scheduled"
        return {"status": status, "url": done.pay_url, "subscription": out, **extra}

    async def _mutate(self, who: Principal, action: str, check: str, link: PageLink | None = None,
                      **changes: Any) -> dict[str, Any]:
        """cancel / resume / unschedule: a flag change on the active subscription, refused (409) when
        `check` says it would change nothing (and 404 when made through a used or outdated `link`)."""
        async with self.pool.acquire() as conn, conn.transaction():
            at = datetime.now(UTC)
            row = self._need_active(await (self._linked(conn, link, at) if link else
                                           self._current(conn, who.client_id, at)))
            if check == "not_canceling" and row["cancel_at_period_end"]:
                raise InvalidState("the subscription is already set to end at the end of the period")
            if check == "canceling" and not row["cancel_at_period_end"]:
                raise InvalidState("the subscription is not set to end; nothing to resume")
            if check == "scheduled" and row["scheduled_plan_id"] is None:
                raise InvalidState("no scheduled plan change to undo")
            plan = self.plans.plan_for(row["plan_id"])
            remote = self._remote(row)
            if remote is not None and "cancel" in changes:
                state = await remote.set_cancel(conn, row, bool(changes["cancel"]))
                new = await self._set_state(conn, row["client_id"], row, state) or row
            else:
                if remote is not None:
                    await remote.unschedule(conn, row)
                new = await self._update(conn, row, **changes)
            out = subscription_json(new, self.plans, plan)
            await audit.record(conn, who, action, "subscription", who.client_id,
                               before=subscription_json(row, self.plans, plan), after=out)
        return out

    async def cancel(self, who: Principal) -> dict[str, Any]:
        return await self._mutate(who, "cancel", "not_canceling", cancel=True)

    async def resume(self, who: Principal) -> dict[str, Any]:
        return await self._mutate(who, "resume", "canceling", cancel=False)

    async def undo_scheduled_change(self, who: Principal) -> dict[str, Any]:
        return await self._mutate(who, "unschedule", "scheduled", scheduled=None)

    async def portal(self, who: Principal, origin: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._current(conn, who.client_id, datetime.now(UTC))
            return {"url": await self.provider.portal_url(conn, who.client_id, origin, page_state(row))}

    # -- the local provider's pages -------------------------------------------------------------

    def _link(self, kind: PageKind, token: str) -> PageLink:
        link = self.provider.read(kind, token) if isinstance(self.provider, LocalProvider) else None
        if link is None:
            raise NotFound("this link is not valid or has expired")
        return link

    async def _linked(self, conn: asyncpg.Connection, link: PageLink, at: datetime) -> asyncpg.Record | None:
        """The subscription a link was made for, locked; 404 once it has changed (the link was used)."""
        row = await self._current(conn, link.client_id, at)
        if page_state(row) != link.state:
            raise NotFound("this link was used already or the subscription has changed since")
        return row

    def checkout_link(self, token: str) -> PageLink:
        """A checkout link still good (404 otherwise), before anything is read."""
        return self._link("checkout", token)

    async def checkout_page(self, token: str) -> dict[str, Any]:
        """What the local checkout page shows: the plan's name, cycle and price, nothing else."""
        link = self._link("checkout", token)
        async with self.pool.acquire() as conn, conn.transaction():
            await self._linked(conn, link, datetime.now(UTC))
        plan = self.plans.get(link.plan_id or "")
        if plan is None or link.cycle is None:
            raise NotFound("this link names a plan that no longer exists")
        return {"planName": plan.name, "cycle": link.cycle, "amountCents": price(plan, link.cycle)}

    async def confirm_checkout(self, token: str, now: datetime | None = None) -> dict[str, Any]:
        """The local checkout page's POST: the subscription starts (once per link)."""
        link = self._link("checkout", token)
        plan = self.plans.get(link.plan_id or "")
        if plan is None or link.cycle is None:
            raise NotFound("this link names a plan that no longer exists")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._linked(conn, link, now or datetime.now(UTC))
            if row is not None and row["status"] == "active":
                raise InvalidState("the workspace already has an active subscription")
            return await self._activate(conn, _system(link.client_id, "local checkout page"), row, plan, link.cycle,
                                        now or datetime.now(UTC))

    async def portal_page(self, token: str) -> dict[str, Any]:
        """What the local portal page shows (plan name, cycle, price, period end, what it can do)."""
        link = self._link("portal", token)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._linked(conn, link, datetime.now(UTC))
        if row is None or row["status"] != "active":
            return {"active": False}
        plan = self.plans.plan_for(row["plan_id"])
        return {"active": True, "planName": plan.name, "cycle": row["cycle"],
                "amountCents": price(plan, row["cycle"]), "periodEnd": iso(row["current_period_end"]),
                "canceling": row["cancel_at_period_end"]}

    async def portal_action(self, token: str, action: str) -> dict[str, Any]:
        """The local portal page's POST: cancel at period end, or resume (once per link)."""
        if action not in ("cancel", "resume"):
            raise BadRequest("action: expected cancel or resume")
        link = self._link("portal", token)
        who = _system(link.client_id, "local billing portal")
        if action == "cancel":
            return await self._mutate(who, "cancel", "not_canceling", link, cancel=True)
        return await self._mutate(who, "resume", "canceling", link, cancel=False)

    # -- rollover -----------------------------------------------------------------------------------

    async def _roll(self, conn: asyncpg.Connection, row: asyncpg.Record, now: datetime) -> asyncpg.Record:
        """Every period of `row` that ended by `now`: renewed (scheduled change applied, renewal
        invoice written, carried credit taken off) or, when canceled, ended on the default plan."""
        who = _system(row["client_id"])
        for _ in range(MAX_ROLLOVERS):
            if row["status"] != "active" or row["current_period_end"] > now:
                break
            before = subscription_json(row, self.plans, self.plans.plan_for(row["plan_id"]))
            if row["cancel_at_period_end"]:
                row = await self._update(conn, row, status="canceled", cancel=False, scheduled=None)
                await conn.execute(q("set_client_plan"), row["client_id"], self.plans.default.id)
                await audit.record(conn, who, "expire", "subscription", row["client_id"], before=before,
                                   after=subscription_json(row, self.plans, self.plans.default))
                break
            plan = self.plans.plan_for(row["scheduled_plan_id"] or row["plan_id"])
            cycle = cast(Cycle, row["scheduled_cycle"] or row["cycle"])
            start, end = row["current_period_end"], period_end(row["current_period_end"], cycle)
            total, credit = apply_credit(price(plan, cycle), row["credit_cents"])
            invoice = await self._invoice(conn, row["client_id"], "renewal", plan, cycle, start, end,
                                          self._lines(plan, cycle, total), total)
            row = await self._update(conn, row, plan_id=plan.id, cycle=cycle, start=start, end=end, scheduled=None,
                                     credit=credit)
            await conn.execute(q("set_client_plan"), row["client_id"], plan.id)
            await audit.record(conn, who, "renew", "subscription", row["client_id"], before=before,
                               after={**subscription_json(row, self.plans, plan),
                                      "invoice": invoice_json(invoice) if invoice else None})
        return row

    async def rollover_due(self, now: datetime | None = None, batch: int = 100) -> int:
        """Roll over every subscription whose period ended (a sweep; safe to run anywhere, any
        number of times: each workspace is handled under its row lock). Returns how many."""
        at = now or datetime.now(UTC)
        done = 0
        due = await self.pool.fetch(q("subscriptions_due"), at, batch, REMOTE_PROVIDERS)
        for client_id in [r["client_id"] for r in due]:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._current(conn, client_id, at)
            done += 1
        return done

    # -- the background rollover job ------------------------------------------------------------

    def start(self) -> None:
        """Start this worker's rollover loop (every API worker runs one; the advisory lock in `tick`
        lets one of them work at a time). An interval of 0 turns it off."""
        self._job.start()

    async def tick(self, now: datetime | None = None) -> int | None:
        """Roll over everything due unless another runner (any process or host) is at it: how many
        subscriptions, or None when the lock was taken. Work in batches until none is left."""
        async with self.pool.acquire() as conn:
            if not await conn.fetchval(q("billing_rollover_try_lock")):
                return None
            try:
                done = 0
                while True:
                    n = await self.rollover_due(now, ROLLOVER_BATCH)
                    done += n
                    if n < ROLLOVER_BATCH:
                        return done
            finally:
                await conn.fetchval(q("billing_rollover_unlock"))

    async def aclose(self) -> None:
        await self._job.aclose()
        await self.provider.aclose()

    # -- what a remote provider reports ------------------------------------------------------------

    async def plan_cycle(self, conn: asyncpg.Connection, client_id: uuid.UUID) -> tuple[str, Cycle]:
        """The workspace's plan and cycle now (an invoice that names no known price is for it)."""
        row = await conn.fetchrow(q("subscription_get"), client_id)
        if row is not None:
            return row["plan_id"], cast(Cycle, row["cycle"])
        return (await self._workspace_plan(conn, client_id)).id, "monthly"

    async def apply_remote(self, conn: asyncpg.Connection, client_id: uuid.UUID, state: RemoteState,
                           label: str) -> None:
        """Record the subscription as the provider reports it (a webhook), under its row lock, with
        an audit row when anything changed: create, renew, expire or update."""
        row = await conn.fetchrow(q("subscription_lock"), client_id)
        new = await self._set_state(conn, client_id, row, state)
        if new is None:
            return
        if row is None or row["status"] != "active":
            action = "create"
        elif new["status"] == "canceled":
            action = "expire"
        elif new["current_period_start"] >= row["current_period_end"]:
            action = "renew"
        else:
            action = "update"
        plan = self.plans.plan_for(new["plan_id"])
        await audit.record(conn, _system(client_id, label), action, "subscription", client_id,
                           before=subscription_json(row, self.plans, plan) if row else None,
                           after=subscription_json(new, self.plans, plan))

    async def _set_state(self, conn: asyncpg.Connection, client_id: uuid.UUID, row: asyncpg.Record | None,
                         state: RemoteState) -> asyncpg.Record | None:
        """The row made to say what `state` says (and the workspace's plan with it); None when it
        said so already."""
        scheduled: tuple[str, str] | bool | None = state.scheduled
        if state.status == "canceled":
            scheduled = None
        elif scheduled is False:
            scheduled = (row["scheduled_plan_id"], row["scheduled_cycle"]) \
                if row is not None and row["scheduled_plan_id"] is not None else None
        target = (state.status, state.plan_id, state.cycle, state.start, state.end,
                  state.cancel_at_period_end and state.status == "active", scheduled)
        if row is not None:
            held = (row["status"], row["plan_id"], row["cycle"], row["current_period_start"],
                    row["current_period_end"], row["cancel_at_period_end"],
                    (row["scheduled_plan_id"], row["scheduled_cycle"]) if row["scheduled_plan_id"] else None)
            if held == target:
                return None
        elif state.status != "active":
            return None                         # never started here: nothing to end
        if row is None or (row["status"] != "active" and state.status == "active"):
            row = await conn.fetchrow(q("subscription_upsert"), client_id, self.provider.name, state.plan_id,
                                      state.cycle, state.start, state.end, 0)
        new = await self._update(conn, row, plan_id=state.plan_id, cycle=state.cycle, status=state.status,
                                 start=state.start, end=state.end, cancel=bool(target[5]), scheduled=scheduled)
        await conn.execute(q("set_client_plan"), client_id,
                           state.plan_id if state.status == "active" else self.plans.default.id)
        return new

    async def record_invoice(self, conn: asyncpg.Connection, client_id: uuid.UUID,
                             invoice: RemoteInvoice) -> asyncpg.Record:
        """A provider's invoice, numbered with the workspace's others on first sight; its status
        follows later reports (never from paid or void back to open)."""
        row: asyncpg.Record = await conn.fetchrow(
            q("invoice_upsert_external"), uuid.uuid4(), client_id, self.provider.name, invoice.reason,
            invoice.plan_id, invoice.cycle, invoice.start, invoice.end, invoice.lines, invoice.total_cents,
            invoice.status, invoice.external_id)
        return row

    # -- storage ------------------------------------------------------------------------------------

    @staticmethod
    def _line(plan: Plan, cycle: Cycle, amount: int) -> dict[str, Any]:
        return {"description": f"{plan.name} ({cycle})", "amountCents": amount}

    @classmethod
    def _lines(cls, plan: Plan, cycle: Cycle, total: int) -> list[dict[str, Any]]:
        """The plan's price, and the carried credit that brought it down to `total`."""
        lines = [cls._line(plan, cycle, price(plan, cycle))]
        if total != price(plan, cycle):
            lines.append({"description": "Credit applied", "amountCents": total - price(plan, cycle)})
        return lines

    async def _invoice(self, conn: asyncpg.Connection, client_id: uuid.UUID, reason: str, plan: Plan,
                       cycle: Cycle, start: datetime, end: datetime, lines: list[dict[str, Any]],
                       total: int) -> asyncpg.Record | None:
        status = self.provider.invoice_status if total > 0 else "paid"
        return await conn.fetchrow(q("invoice_insert"), uuid.uuid4(), client_id, self.provider.name, reason, plan.id,
                                   cycle, start, end, lines, total, status)

    async def _update(self, conn: asyncpg.Connection, row: asyncpg.Record, *, plan_id: str | None = None,
                      cycle: str | None = None, status: str | None = None, start: datetime | None = None,
                      end: datetime | None = None, cancel: bool | None = None,
                      scheduled: tuple[str, str] | bool | None = False, credit: int | None = None) -> asyncpg.Record:
        """The row with the given columns changed (scheduled: False = unchanged, None = cleared)."""
        sched_plan, sched_cycle = row["scheduled_plan_id"], row["scheduled_cycle"]
        if scheduled is None:
            sched_plan = sched_cycle = None
        elif isinstance(scheduled, tuple):
            sched_plan, sched_cycle = scheduled
        new: asyncpg.Record = await conn.fetchrow(
            q("subscription_update"), row["client_id"], plan_id or row["plan_id"], cycle or row["cycle"],
            status or row["status"], start or row["current_period_start"], end or row["current_period_end"],
            row["cancel_at_period_end"] if cancel is None else cancel, sched_plan, sched_cycle,
            row["credit_cents"] if credit is None else credit)
        return new
