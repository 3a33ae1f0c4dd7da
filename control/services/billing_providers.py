"""Billing providers: where a subscription is paid. Mittr keeps the subscription and its invoices in
Postgres either way (control/services/billing.py); a provider only says how a checkout completes,
which status the invoices it issues start in, and where its customer portal is.

Built in: `local` (no external service; `manual` is its former name and still accepted). Checkout
and the portal are small pages this server renders (api/handlers/billing_pages.py) behind a
single-use link: the token is sealed with the server's encryption key (AES-GCM, so it can be neither
read nor forged), expires, and names the subscription's state when it was made, so once a POST on
the page has changed the subscription (or anything else has) the link is dead. Invoices are recorded
as `open` (the operator collects payment outside Mittr).

`stripe` (control/services/billing_stripe.py) is `remote`: Stripe holds the subscription, renews
it and issues the invoices; Mittr's rows mirror what Stripe reports (webhooks), and the changes a
workspace asks for are made at Stripe first (the `remote` methods below), inside the transaction
that then records them.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import asyncpg

from control.crypto import PREFIX, CryptoError, SecretBox, box_for
from control.policy.plans import Plan
from control.policy.proration import CYCLES, Cycle, Proration
from control.settings import Settings, SettingsError

PageKind = Literal["checkout", "portal"]
LINK_TTL_S = 3600


@dataclass(frozen=True, slots=True)
class CheckoutStart:
    activate_now: bool     # True: the subscription is active when checkout returns
    url: str | None        # else: where to send the customer to pay (activation comes back later)


@dataclass(frozen=True, slots=True)
class PageLink:
    """What a local page's token says: which workspace, the subscription state it was made for,
    and for a checkout the plan and cycle."""
    kind: PageKind
    client_id: uuid.UUID
    state: str
    plan_id: str | None = None
    cycle: Cycle | None = None


@dataclass(frozen=True, slots=True)
class RemoteState:
    """A subscription as a remote provider reports it, in the columns of Mittr's row."""
    status: Literal["active", "canceled"]
    plan_id: str
    cycle: Cycle
    start: datetime
    end: datetime
    cancel_at_period_end: bool
    scheduled: tuple[str, Cycle] | bool | None      # False: keep what the row says; None: none


@dataclass(frozen=True, slots=True)
class RemoteInvoice:
    """An invoice a remote provider issued, in the columns of Mittr's invoices."""
    external_id: str
    reason: Literal["checkout", "change", "renewal"]
    status: Literal["open", "paid", "void"]
    plan_id: str
    cycle: Cycle
    start: datetime
    end: datetime
    lines: list[dict[str, Any]]
    total_cents: int


@dataclass(frozen=True, slots=True)
class RemoteChange:
    """A plan change made at the provider: the subscription it reports now (None when the change
    waits for the renewal), the invoice it issued for it, and where to pay when it waits for that."""
    state: RemoteState | None
    invoice: RemoteInvoice | None = None
    pay_url: str | None = None


class BillingProvider(Protocol):
    name: str
    invoice_status: str    # 'open' (to be collected) or 'paid' (the provider took the money)
    remote: bool           # the provider renews and invoices (and says so by webhook); Mittr does not

    async def checkout(self, conn: asyncpg.Connection, client_id: uuid.UUID, plan: Plan, cycle: Cycle, origin: str,
                       state: str) -> CheckoutStart: ...

    async def portal_url(self, conn: asyncpg.Connection, client_id: uuid.UUID, origin: str, state: str) -> str: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class RemoteBillingProvider(BillingProvider, Protocol):
    """A provider that holds the subscription (Stripe). Each change is made at the provider first,
    or raises and nothing is recorded; `preview` asks it what an immediate change would invoice.
    The local provider has none of these: Mittr itself is where its changes are made."""

    async def change(self, conn: asyncpg.Connection, row: asyncpg.Record, plan: Plan, cycle: Cycle,
                     now: bool) -> RemoteChange: ...

    async def set_cancel(self, conn: asyncpg.Connection, row: asyncpg.Record, cancel: bool) -> RemoteState: ...

    async def unschedule(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None: ...

    async def preview(self, conn: asyncpg.Connection, row: asyncpg.Record, plan: Plan, cycle: Cycle,
                      at: datetime) -> Proration: ...


class LocalProvider:
    name = "local"
    invoice_status = "open"
    remote = False

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._box: SecretBox | None = None

    def _sealer(self) -> SecretBox:
        if self._box is None:      # resolved on first use (the key file may be made then)
            self._box = box_for(str(self._settings.security["encryption_key"]))
        return self._box

    def link(self, kind: PageKind, client_id: uuid.UUID, state: str, plan: Plan | None = None,
             cycle: Cycle | None = None, now: float | None = None) -> str:
        body = {"k": kind, "c": str(client_id), "s": state, "p": plan.id if plan else None, "y": cycle,
                "e": int((now or time.time()) + LINK_TTL_S)}
        return self._sealer().seal(json.dumps(body, separators=(",", ":")))[len(PREFIX):]

    def read(self, kind: PageKind, token: str, now: float | None = None) -> PageLink | None:
        """The link behind `token`, or None if it is not one of ours, not this kind, or expired."""
        if not 0 < len(token) <= 1024:
            return None
        try:
            body = json.loads(self._sealer().open(PREFIX + token))
            client_id = uuid.UUID(body["c"])
        except (CryptoError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(body, dict) or body.get("k") != kind or not isinstance(body.get("e"), int) \
                or body["e"] < (now or time.time()) or not isinstance(body.get("s"), str):
            return None
        cycle = body.get("y")
        if kind == "checkout" and (not isinstance(body.get("p"), str) or cycle not in CYCLES):
            return None
        return PageLink(kind, client_id, body["s"], body.get("p"), cycle)

    async def checkout(self, conn: asyncpg.Connection, client_id: uuid.UUID, plan: Plan, cycle: Cycle, origin: str,
                       state: str) -> CheckoutStart:
        token = self.link("checkout", client_id, state, plan, cycle)
        return CheckoutStart(activate_now=False, url=f"{origin}/billing/local/checkout/{token}")

    async def portal_url(self, conn: asyncpg.Connection, client_id: uuid.UUID, origin: str, state: str) -> str:
        return f"{origin}/billing/local/portal/{self.link('portal', client_id, state)}"

    async def aclose(self) -> None:
        return None


PROVIDERS = ("local", "manual", "stripe")


def provider_for(settings: Settings) -> BillingProvider:
    """[billing] provider (its settings checked: a SettingsError names the first mistake)."""
    name = str(settings.section("billing")["provider"])
    if name in ("local", "manual"):
        return LocalProvider(settings)
    if name == "stripe":
        from control.services.billing_stripe import StripeProvider  # it builds on this module
        return StripeProvider(settings)
    raise SettingsError(f"billing.provider: unknown provider {name!r} (known: {', '.join(PROVIDERS)})")
