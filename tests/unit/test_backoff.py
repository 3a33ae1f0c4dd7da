"""Backoff delays and Retry-After parsing."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.policy.backoff import backoff_delay_ms, parse_retry_after


def test_exponential_growth_with_equal_jitter() -> None:
    # jitter 0 -> half the raw delay; jitter ~1 -> (almost) all of it.
    assert [backoff_delay_ms(n, 1_000, 2.0, 60_000, 0.0) for n in range(1, 6)] == [
        500,
        1_000,
        2_000,
        4_000,
        8_000,
    ]
    assert backoff_delay_ms(1, 1_000, 2.0, 60_000, 0.5) == 750
    assert backoff_delay_ms(3, 1_000, 2.0, 60_000, 0.999999) == 4_000


def test_capped_at_max() -> None:
    assert backoff_delay_ms(10, 1_000, 2.0, 60_000, 0.0) == 30_000
    assert backoff_delay_ms(10, 1_000, 2.0, 60_000, 0.999999) == 60_000


def test_huge_attempts_do_not_overflow() -> None:
    assert backoff_delay_ms(10_000, 1_000, 2.0, 86_400_000, 0.0) == 43_200_000
    assert backoff_delay_ms(10**9, 1_000, 10.0, 86_400_000, 0.5) == 64_800_000
    assert backoff_delay_ms(10**9, 1, 1e300, 5, 0.0) == 3


def test_degenerate_inputs() -> None:
    assert backoff_delay_ms(0, 1_000, 2.0, 60_000, 0.0) == 500  # treated as the first attempt
    assert backoff_delay_ms(5, 0, 2.0, 60_000, 0.5) == 0
    assert backoff_delay_ms(5, 1_000, 2.0, -1, 0.5) == 0
    assert backoff_delay_ms(3, 1_000, 1.0, 60_000, 0.0) == 500  # constant backoff
    with pytest.raises(ValueError):
        backoff_delay_ms(1, 1_000, math.nan, 60_000, 0.0)
    with pytest.raises(ValueError):
        backoff_delay_ms(1, 1_000, -2.0, 60_000, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(1, 10_000),
    base=st.integers(0, 10**7),
    mult=st.floats(1.0, 100.0),
    cap=st.integers(0, 10**10),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
)
def test_bounds(attempt: int, base: int, mult: float, cap: int, jitter: float) -> None:
    delay = backoff_delay_ms(attempt, base, mult, cap, jitter)
    assert 0 <= delay <= cap
    try:
        grown = base * mult ** (attempt - 1)
    except OverflowError:
        grown = math.inf
    raw = min(grown, cap) if base else 0
    assert math.floor(raw / 2) <= delay <= math.ceil(raw)


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(1, 5_000),
    base=st.integers(0, 10**7),
    mult=st.floats(1.0, 100.0),
    cap=st.integers(0, 10**10),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
)
def test_monotone_in_attempt(attempt: int, base: int, mult: float, cap: int, jitter: float) -> None:
    # With the same jitter draw, a later attempt never waits less (mult >= 1).
    assert backoff_delay_ms(attempt, base, mult, cap, jitter) <= backoff_delay_ms(attempt + 1, base, mult, cap, jitter)
    # And the raw delay (upper end of the jitter range) is monotone too.
    assert backoff_delay_ms(attempt, base, mult, cap, 0.0) <= backoff_delay_ms(attempt + 1, base, mult, cap, 0.0)


def test_retry_after_seconds() -> None:
    assert parse_retry_after("120", 0.0) == 120.0
    assert parse_retry_after(" 1.5 ", 0.0) == 1.5
    assert parse_retry_after("0", 0.0) == 0.0
    assert parse_retry_after("-5", 0.0) == 0.0


def test_retry_after_http_date() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2024, 5, 1, 12, 1, 30, tzinfo=UTC), usegmt=True)
    assert later == "Wed, 01 May 2024 12:01:30 GMT"
    assert parse_retry_after(later, now) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("Wed, 01 May 2024 14:01:30 +0200", now) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 -0000", now) == 90.0


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "1e3", "inf", "nan", "12abc", "Wed, 99 Foo 2024", "9" * 400]
)
def test_retry_after_invalid(value: str | None) -> None:
    assert parse_retry_after(value, 1_700_000_000.0) is None
