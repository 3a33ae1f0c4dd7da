"""The per-tenant time budget: refuses a tenant once it spent its share, others unaffected, and
lets it back in after its spending drained."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.policy.time_budget import TimeBudget


def test_refuses_a_tenant_over_budget_while_another_runs() -> None:
    budget = TimeBudget(200)
    now = 0.0
    for _ in range(4):
        assert budget.retry_after_ms("a", now) == 0
        budget.charge("a", now, 60)   # 240 ms spent at once
    wait = budget.retry_after_ms("a", now)
    assert wait == 201                # 40 ms over, draining at 0.2 ms per ms: 200 ms, then below
    assert budget.retry_after_ms("b", now) == 0
    assert budget.retry_after_ms("a", now + wait - 1) > 0
    assert budget.retry_after_ms("a", now + wait) == 0


def test_recovers_fully_after_a_second_idle() -> None:
    budget = TimeBudget(100)
    budget.charge("a", 0, 150)
    assert budget.retry_after_ms("a", 0) > 0
    assert budget.retry_after_ms("a", 1500) == 0
    budget.charge("a", 1500, 99)      # spending drained to zero: a full allowance again
    assert budget.retry_after_ms("a", 1500) == 0


def test_unlimited_never_refuses_nor_remembers() -> None:
    budget = TimeBudget(0)
    budget.charge("a", 0, 10**9)
    assert budget.retry_after_ms("a", 0) == 0 and len(budget) == 0


def test_forgets_drained_tenants() -> None:
    budget = TimeBudget(1000)
    for i in range(5000):
        budget.charge(f"t{i}", i, 1)
    assert len(budget) < 2100          # pruned as it grew, keeping only the recent ones


def test_refuses_non_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        TimeBudget(float("inf"))


@settings(max_examples=200, deadline=None)
@given(ms_per_s=st.integers(1, 500),
       calls=st.lists(st.tuples(st.floats(0, 300), st.floats(0, 200)), min_size=1, max_size=200))
def test_spending_in_any_window_is_bounded(ms_per_s: int, calls: list[tuple[float, float]]) -> None:
    """Over any window of W ms, what a tenant is let spend is at most one second's allowance,
    plus what drains in W, plus one call."""
    budget = TimeBudget(ms_per_s)
    now, ran = 0.0, []
    for gap, cost in calls:
        now += gap
        if budget.retry_after_ms("t", now) == 0:
            budget.charge("t", now, cost)
            ran.append((now, cost))
    largest = max(cost for _, cost in calls)
    for i, (start, _) in enumerate(ran):
        spent = 0.0
        for at, cost in ran[i:]:
            spent += cost
            window = at - start
            assert spent <= ms_per_s + ms_per_s * window / 1000 + largest + 1e-6
