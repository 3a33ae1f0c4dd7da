"""Billing periods and proration in integer cents. Pure (no clock, no I/O), so the arithmetic is
tested alone; the README's "Usage, plans and billing" works one example through.

Rules:
- A period is one calendar month or one calendar year from its start (UTC; a start on the 31st
  ends on the last day of a shorter month, at the same time of day).
- A change takes effect NOW when it is an upgrade: the new plan costs at least as much per month as
  the old (compared at the monthly prices) and the cycle does not go from annual to monthly. Every
  other change (a cheaper plan, annual -> monthly) is SCHEDULED for the end of the period: nothing is
  charged or credited today.
- A change made now starts a new period at `now` on the new plan and cycle. The old period's price
  splits into what was used and what was not, by whole seconds: used = price * elapsed // length
  (rounded down, in the customer's favour), credit = price - used, so used + credit == price and no
  cent is lost. The charge is the new plan's full price for the new cycle. due today =
  max(charge - credit, 0); a credit larger than the charge is carried (kept as the subscription's
  credit) and taken off the next invoices. Always: charge - credit == due_today - carried.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from control.policy.plans import Plan

Cycle = Literal["monthly", "annual"]
CYCLES: tuple[Cycle, ...] = ("monthly", "annual")


def add_months(start: datetime, months: int) -> datetime:
    """`start` moved by whole calendar months, the day clamped to the target month's length."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def period_end(start: datetime, cycle: Cycle) -> datetime:
    return add_months(start, 12 if cycle == "annual" else 1)


def price(plan: Plan, cycle: Cycle) -> int:
    return plan.annual_price_cents if cycle == "annual" else plan.monthly_price_cents


def takes_effect_now(old: Plan, old_cycle: Cycle, new: Plan, new_cycle: Cycle) -> bool:
    """Upgrades apply at once; downgrades and annual -> monthly wait for the renewal."""
    if old_cycle == "annual" and new_cycle == "monthly":
        return False
    return new.monthly_price_cents >= old.monthly_price_cents


def split(price_cents: int, start: datetime, end: datetime, now: datetime) -> tuple[int, int]:
    """(used, unused) cents of a period's price at `now`; they always add up to the price."""
    length = int((end - start).total_seconds())
    elapsed = min(max(int((now - start).total_seconds()), 0), length)
    used = price_cents * elapsed // length if length > 0 else price_cents
    return used, price_cents - used


@dataclass(frozen=True, slots=True)
class Proration:
    effective: Literal["now", "renewal"]
    credit_cents: int          # unused time of the current period (plus any credit already held)
    charge_cents: int          # the new plan for its new period (0 when scheduled)
    due_today_cents: int
    carried_cents: int         # credit left over after today, taken off the next invoices
    period_start: datetime     # of the period the change leads to
    period_end: datetime
    renewal_cents: int         # what the next renewal invoice will ask for (after carried credit)


def prorate(old: Plan, old_cycle: Cycle, start: datetime, end: datetime, held_credit: int,
            new: Plan, new_cycle: Cycle, now: datetime) -> Proration:
    """The breakdown of moving a subscription on `old` ([start, end), `held_credit` cents of credit
    already carried) to `new` at `now`."""
    if not takes_effect_now(old, old_cycle, new, new_cycle):
        renewal_price = price(new, new_cycle)
        return Proration("renewal", 0, 0, 0, held_credit, end, period_end(end, new_cycle),
                         max(renewal_price - held_credit, 0))
    _, unused = split(price(old, old_cycle), start, end, now)
    credit = unused + held_credit
    charge = price(new, new_cycle)
    due = max(charge - credit, 0)
    carried = max(credit - charge, 0)
    new_end = period_end(now, new_cycle)
    return Proration("now", credit, charge, due, carried, now, new_end, max(charge - carried, 0))


def apply_credit(amount_cents: int, credit_cents: int) -> tuple[int, int]:
    """(what is due, credit left) when `credit_cents` is taken off an invoice of `amount_cents`."""
    used = min(amount_cents, credit_cents)
    return amount_cents - used, credit_cents - used
