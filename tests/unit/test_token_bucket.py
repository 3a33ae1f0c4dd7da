"""Token bucket: rate and burst limits, lazy refill, unlimited mode, rate changes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.policy.token_bucket import TokenBucket

EPS = 1e-6


def test_starts_full_then_refills_lazily() -> None:
    bucket = TokenBucket(rate_per_sec=2.0, burst=4.0, now=10.0)
    assert bucket.rate == 2.0 and bucket.burst == 4.0
    assert [bucket.try_take(10.0) for _ in range(5)] == [True, True, True, True, False]
    assert bucket.wait_time(10.0) == pytest.approx(0.5)
    assert not bucket.try_take(10.4)
    assert bucket.try_take(10.5)
    assert bucket.tokens(100.0) == 4.0  # capped at burst


def test_default_burst() -> None:
    assert TokenBucket(50.0).burst == 50.0
    assert TokenBucket(0.2).burst == 1.0


def test_unlimited() -> None:
    bucket = TokenBucket(0)
    assert all(bucket.try_take(0.0, 1_000.0) for _ in range(1_000))
    assert bucket.wait_time(0.0, 10**9) == 0.0
    assert bucket.tokens(0.0) == math.inf
    assert bucket.unlimited


def test_take_more_than_burst_is_impossible() -> None:
    bucket = TokenBucket(10.0, burst=5.0)
    assert not bucket.try_take(1_000.0, 6.0)
    assert bucket.wait_time(1_000.0, 6.0) == math.inf
    assert bucket.try_take(1_000.0, 5.0)


def test_clock_going_back_adds_nothing() -> None:
    bucket = TokenBucket(1.0, burst=1.0, now=100.0)
    assert bucket.try_take(100.0)
    assert not bucket.try_take(50.0)
    assert not bucket.try_take(100.5)  # the 50 s "gap" was not credited
    assert bucket.try_take(101.0)


def test_set_rate() -> None:
    bucket = TokenBucket(1.0, burst=10.0)
    for _ in range(10):
        assert bucket.try_take(0.0)
    bucket.set_rate(100.0, None, now=1.0)  # earned 1 token at the old rate first
    assert bucket.rate == 100.0 and bucket.burst == 100.0
    assert bucket.tokens(1.0) == pytest.approx(1.0)
    assert bucket.tokens(1.5) == pytest.approx(51.0)
    bucket.set_rate(1.0, 2.0, now=1.5)  # shrinking the burst clamps stored tokens
    assert bucket.tokens(1.5) == 2.0
    bucket.set_rate(0, None, now=2.0)
    assert bucket.try_take(2.0, 1e6)
    bucket.set_rate(1.0, 3.0, now=3.0)  # leaving unlimited starts full
    assert bucket.tokens(3.0) == 3.0


@pytest.mark.parametrize(("rate", "burst"), [(-1.0, None), (math.nan, None), (math.inf, None), (1.0, 0.0), (1.0, -3.0)])
def test_rejects_bad_config(rate: float, burst: float | None) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


_requests = st.lists(
    st.tuples(st.floats(0.0, 5.0), st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.0])),
    min_size=1,
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 50.0),
    burst=st.one_of(st.none(), st.floats(1.0, 20.0)),
    start=st.floats(0.0, 1_000.0),
    requests=_requests,
)
def test_window_property(rate: float, burst: float | None, start: float, requests: list[tuple[float, float]]) -> None:
    """Over any window [t, t+w] the tokens taken never exceed rate*w + burst."""
    bucket = TokenBucket(rate, burst, now=start)
    capacity = bucket.burst
    now = start
    taken: list[tuple[float, float]] = []
    for gap, n in requests:
        now += gap
        if bucket.try_take(now, n):
            taken.append((now, n))
    for i, (t0, _) in enumerate(taken):
        total = 0.0
        for t1, n in taken[i:]:
            total += n
            assert total <= rate * (t1 - t0) + capacity + EPS


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 50.0),
    burst=st.floats(1.0, 20.0),
    now=st.floats(0.0, 1_000.0),
    drained=st.floats(0.0, 20.0),
    n=st.floats(0.1, 20.0),
)
def test_wait_time_is_exactly_enough(rate: float, burst: float, now: float, drained: float, n: float) -> None:
    bucket = TokenBucket(rate, burst, now=now)
    bucket.try_take(now, min(drained, burst))
    wait = bucket.wait_time(now, n)
    if n > burst + 1e-9:  # within the rounding slack a full bucket still serves n
        assert wait == math.inf
        return
    assert wait >= 0.0
    if wait > 1e-4:  # clearly short of tokens (not within the rounding slack) a bit earlier
        assert not bucket.try_take(now + wait * 0.99, n)
    assert bucket.try_take(now + wait, n)
