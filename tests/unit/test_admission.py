"""Per-target memory caps and in-flight shares: what keeps one endpoint from starving the rest."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.policy.admission import hold_cap, in_flight_limit, updated_latency


def cap(**kw: object) -> int:
    args: dict[str, object] = dict(max_buffered=20_000, max_in_flight=64, rate_per_s=0, breaker_open=False,
                                   latency_ms=None)
    args.update(kw)
    return hold_cap(**args)  # type: ignore[arg-type]


def test_a_fast_unlimited_target_may_hold_a_share_not_everything() -> None:
    assert cap() == 5000
    assert cap(latency_ms=1.0) == 5000


def test_a_rate_limited_target_holds_about_two_seconds_of_work() -> None:
    assert cap(rate_per_s=1) == 2
    assert cap(rate_per_s=20) == 40
    assert cap(rate_per_s=1_000_000) == 5000


def test_an_open_breaker_holds_only_the_probe() -> None:
    assert cap(breaker_open=True) == 1


def test_a_hanging_receiver_holds_its_concurrency_not_more() -> None:
    assert cap(latency_ms=30_000) == 64
    assert cap(latency_ms=500) == 256


def test_in_flight_share_applies_only_under_contention() -> None:
    assert in_flight_limit(own_limit=64, shard_in_flight=100, shard_limit=512, active_targets=50) == 64
    assert in_flight_limit(own_limit=64, shard_in_flight=400, shard_limit=512, active_targets=50) == 10
    assert in_flight_limit(own_limit=64, shard_in_flight=512, shard_limit=512, active_targets=2000) == 1


def test_latency_average_moves_toward_samples() -> None:
    assert updated_latency(None, 40) == 40
    assert 40 < updated_latency(40, 1000) < 1000


@given(st.integers(1, 10**6), st.integers(1, 512), st.integers(0, 10**5), st.booleans(),
       st.one_of(st.none(), st.floats(0.01, 10**6)))
def test_cap_is_between_one_and_a_quarter_of_the_buffer(buffered: int, in_flight: int, rate: int, open_: bool,
                                                      latency: float | None) -> None:
    c = cap(max_buffered=buffered, max_in_flight=in_flight, rate_per_s=rate, breaker_open=open_, latency_ms=latency)
    assert 1 <= c <= max(1, buffered // 4)
