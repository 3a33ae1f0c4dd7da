"""Billing providers: where a subscription is paid. Mittr keeps the subscription and its invoices in
Postgres either way (control/services/billing.py); a provider only says how a checkout completes,
which status the invoices it issues start in, and where its customer portal is.

Built in: `manual` (no external service). Checkout activates at once, invoices are recorded as
`open` (the operator collects payment outside Mittr), and the "portal" is Mittr's own billing
overview. No other provider ships: a Stripe provider would need the stripe SDK and Stripe's API,
neither of which can be exercised here, so none is pretended.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from control.policy.plans import Plan
from control.policy.proration import Cycle
from control.settings import Settings, SettingsError


@dataclass(frozen=True, slots=True)
class CheckoutStart:
    activate_now: bool     # True: the subscription is active when checkout returns
    url: str | None        # else: where to send the customer to pay (activation comes back later)


class BillingProvider(Protocol):
    name: str
    invoice_status: str    # 'open' (to be collected) or 'paid' (the provider took the money)

    def checkout(self, client_id: uuid.UUID, plan: Plan, cycle: Cycle, origin: str) -> CheckoutStart: ...

    def portal_url(self, client_id: uuid.UUID, origin: str) -> str: ...


class ManualProvider:
    name = "manual"
    invoice_status = "open"

    def checkout(self, client_id: uuid.UUID, plan: Plan, cycle: Cycle, origin: str) -> CheckoutStart:
        return CheckoutStart(activate_now=True, url=None)

    def portal_url(self, client_id: uuid.UUID, origin: str) -> str:
        return f"{origin}/api/v1/billing/overview"


PROVIDERS: dict[str, type[ManualProvider]] = {"manual": ManualProvider}


def provider_for(settings: Settings) -> BillingProvider:
    """[billing] provider."""
    name = str(settings.section("billing")["provider"])
    made = PROVIDERS.get(name)
    if made is None:
        raise SettingsError(f"billing.provider: unknown provider {name!r} (known: {', '.join(PROVIDERS)})")
    return made()
