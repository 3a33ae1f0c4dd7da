"""Proration in integer cents: no cent lost, upgrades now, downgrades at renewal (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from control.policy.plans import Plan
from control.policy.proration import (
    CYCLES,
    Cycle,
    add_months,
    apply_credit,
    period_end,
    price,
    prorate,
    split,
    takes_effect_now,
)


def plan(pid: str, monthly: int, annual: int) -> Plan:
    return Plan(pid, pid, monthly, annual, None, None, None, None, frozenset())


prices = st.integers(min_value=0, max_value=10_000_000)
plans = st.builds(plan, st.sampled_from(["a", "b", "c"]), prices, prices)
cycles = st.sampled_from(CYCLES)
starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


def test_periods_follow_the_calendar() -> None:
    jan31 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert period_end(jan31, "monthly") == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    assert period_end(datetime(2028, 2, 29, tzinfo=UTC), "annual") == datetime(2029, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 12, 15, tzinfo=UTC), 1) == datetime(2027, 1, 15, tzinfo=UTC)


def test_the_worked_example_of_the_readme() -> None:
    growth, scale = plan("growth", 4900, 49000), plan("scale", 19900, 199000)
    start = datetime(2026, 4, 1, tzinfo=UTC)
    end = period_end(start, "monthly")          # 30 days
    now = start + timedelta(days=12)            # 18 of 30 days unused
    p = prorate(growth, "monthly", start, end, 0, scale, "monthly", now)
    assert (p.effective, p.credit_cents, p.charge_cents, p.due_today_cents, p.carried_cents) == \
        ("now", 2940, 19900, 16960, 0)
    assert p.period_start == now and p.period_end == datetime(2026, 5, 13, tzinfo=UTC)
    assert p.renewal_cents == 19900


@given(prices, starts, cycles, st.floats(min_value=-0.5, max_value=1.5))
def test_a_period_splits_into_used_and_unused_without_losing_a_cent(amount: int, start: datetime, cycle: Cycle,
                                                                     at: float) -> None:
    end = period_end(start, cycle)
    now = start + (end - start) * at
    used, unused = split(amount, start, end, now)
    assert used + unused == amount and 0 <= used <= amount
    assert (at <= 0) <= (used == 0) and (at >= 1) <= (unused == 0)


@given(plans, cycles, plans, cycles, starts, st.floats(min_value=0, max_value=1), st.integers(0, 1_000_000))
def test_proration_never_loses_a_cent(old: Plan, old_cycle: Cycle, new: Plan, new_cycle: Cycle, start: datetime,
                                      at: float, held: int) -> None:
    end = period_end(start, old_cycle)
    now = start + (end - start) * at
    p = prorate(old, old_cycle, start, end, held, new, new_cycle, now)
    assert min(p.credit_cents, p.charge_cents, p.due_today_cents, p.carried_cents, p.renewal_cents) >= 0
    if p.effective == "now":
        used, unused = split(price(old, old_cycle), start, end, now)
        assert p.credit_cents == unused + held and used + unused == price(old, old_cycle)
        assert p.charge_cents == price(new, new_cycle)
        assert p.charge_cents - p.credit_cents == p.due_today_cents - p.carried_cents
        assert p.due_today_cents == 0 or p.carried_cents == 0
        assert p.period_start == now and p.period_end == period_end(now, new_cycle)
    else:
        assert (p.credit_cents, p.charge_cents, p.due_today_cents, p.carried_cents) == (0, 0, 0, held)
        assert p.period_start == end and p.period_end == period_end(end, new_cycle)


@given(plans, cycles, plans, cycles)
def test_annual_to_monthly_and_cheaper_plans_wait_for_the_renewal(old: Plan, oc: Cycle, new: Plan, nc: Cycle) -> None:
    now = takes_effect_now(old, oc, new, nc)
    assert now == (not (oc == "annual" and nc == "monthly") and new.monthly_price_cents >= old.monthly_price_cents)


@given(prices, st.integers(0, 10_000_000))
def test_credit_taken_off_an_invoice(amount: int, credit: int) -> None:
    due, left = apply_credit(amount, credit)
    assert due >= 0 and left >= 0 and (amount - due) == (credit - left)
    assert due == 0 or left == 0
