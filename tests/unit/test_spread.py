"""Hot targets (engine/policy/spread.py): where a hot target's backlog goes, how much of it, when a
target counts as hot, and how a spread endpoint spends its rate from leased tokens. Pure, no I/O."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from control.policy.assignment import Member, assign
from control.policy.partitioning import shard_ranges
from engine.dispatch import Dispatcher
from engine.policy.breaker import BreakerState, CircuitBreaker
from engine.policy.spread import FETCH_WAIT_S, SPREAD_HOLD_MS, SharedRate, helper_partitions, is_hot, top_up
from tests.unit.test_dispatch import T0, endpoint, task


def _range_of(p: int, ranges: list[tuple[int, int]]) -> int:
    return next(i for i, (lo, hi) in enumerate(ranges) if lo <= p < hi)


@settings(max_examples=300, deadline=None)
@given(partitions=st.integers(1, 5000), shards=st.integers(1, 40), width=st.integers(0, 50), data=st.data())
def test_helpers_are_one_partition_in_each_of_other_shards_ranges(partitions: int, shards: int, width: int,
                                                                  data: st.DataObject) -> None:
    ranges = shard_ranges(partitions, shards)
    home = data.draw(st.integers(0, partitions - 1))
    helpers = helper_partitions(home, ranges, width)
    live = [r for r in ranges if r[1] > r[0]]
    assert len(helpers) == max(0, min(width, len(live)) - 1)
    owners = [_range_of(p, ranges) for p in helpers]
    assert len(set(owners)) == len(owners)                      # each in another shard's range ...
    assert _range_of(home, ranges) not in owners                # ... never the home's own
    assert all(0 <= p < partitions for p in helpers)
    assert helper_partitions(home, ranges, width) == helpers    # every shard computes the same


@given(members=st.lists(st.tuples(st.text("abc", min_size=1, max_size=3), st.integers(1, 4)), min_size=1,
                        max_size=5), home=st.integers(0, 4095))
def test_helpers_follow_the_member_assignment(members: list[tuple[str, int]], home: int) -> None:
    ranges = list(assign([Member(m, k) for m, k in members], 4096).values())
    helpers = helper_partitions(home, ranges, 4)
    assert len({_range_of(p, sorted(ranges)) for p in helpers}) == len(helpers) == min(4, len(ranges)) - 1


def test_different_targets_of_one_shard_use_different_helper_partitions() -> None:
    ranges = shard_ranges(4096, 2)
    assert helper_partitions(5, ranges, 2) == [2053]
    assert helper_partitions(6, ranges, 2) == [2054]
    assert helper_partitions(2053, ranges, 2) == [5]


@given(helpers=st.lists(st.integers(0, 4095), max_size=8, unique=True), data=st.data(), cap=st.integers(0, 300))
def test_top_up_fills_each_helper_to_its_cap_interleaved(helpers: list[int], data: st.DataObject, cap: int) -> None:
    waiting = data.draw(st.lists(st.integers(0, 400), min_size=len(helpers), max_size=len(helpers)))
    dests = top_up(helpers, waiting, cap)
    for p, w in zip(helpers, waiting, strict=True):
        assert dests.count(p) == max(0, cap - w)                 # a helper never holds more than cap waiting
    # Any prefix (the home may have fewer tasks to give) is spread evenly among those still wanting.
    for n in range(len(dests) + 1):
        got = [dests[:n].count(p) for p, w in zip(helpers, waiting, strict=True) if w < cap]
        if got:
            assert max(got) - min(got) <= 1 or min(got) == min(cap - w for w in waiting if w < cap)


@given(fifo=st.booleans(), blocked=st.booleans(), closed=st.booleans(), held=st.integers(0, 100),
       cap=st.integers(0, 100), throttled=st.booleans())
def test_hot_only_when_the_shard_is_the_limit(fifo: bool, blocked: bool, closed: bool, held: int, cap: int,
                                              throttled: bool) -> None:
    hot = is_hot(fifo=fifo, blocked=blocked, breaker_closed=closed, held=held, cap=cap, throttled=throttled)
    assert hot == (not fifo and not blocked and closed and not throttled and cap > 0 and 2 * held >= cap)


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(1, 2000), steps=st.lists(st.tuples(st.floats(0, 0.3), st.integers(0, 3000)), max_size=60))
def test_a_shared_rate_sends_only_leased_tokens(rate: int, steps: list[tuple[float, int]]) -> None:
    """Whatever Postgres grants and whenever, a shard sends at most what it was granted, and asks
    for tokens only while it has none (one fetch at a time)."""
    shared, now, granted, sent = SharedRate(rate), 0.0, 0, 0
    for dt, grant in steps:
        now += dt
        while shared.wait(now) == 0:
            assert shared.take(now)
            sent += 1
        if shared.wanted:
            assert not shared.fetching
            shared.wanted, shared.fetching = False, True
            n = min(grant, shared.chunk())
            granted += n
            shared.granted(n, 0.0, now)
        assert sent <= granted
    assert 1 <= shared.chunk() <= max(1, rate // 10) or shared.chunk() == 1


def test_an_empty_shared_bucket_waits_locally_and_a_failed_fetch_backs_off() -> None:
    shared = SharedRate(10)
    assert shared.wait(0.0) == FETCH_WAIT_S and shared.wanted
    shared.wanted, shared.fetching = False, True
    assert shared.wait(0.0) == FETCH_WAIT_S and not shared.wanted     # one fetch at a time
    shared.granted(0, 0.5, 0.0)                                      # Postgres: half a token left
    assert math.isclose(shared.wait(0.0), 0.05) and not shared.wanted
    shared.failed(1.0)
    assert shared.wait(1.2) > 0 and not shared.wanted


def test_a_spread_endpoint_spends_leased_tokens_not_its_own_bucket() -> None:
    d = Dispatcher(T0, 100, 100)
    t = endpoint(d, rate_limit_per_sec=100)
    for _ in range(30):
        d.add(t, task(t), T0)
    d.share(t, T0)
    assert t.shared is not None and t.spread_until == T0 + SPREAD_HOLD_MS
    assert d.take(T0) == [] and d.token_requests == [t]               # no tokens yet: ask Postgres once
    d.token_requests.clear()
    assert d.take(T0 + 1) == [] and d.token_requests == []
    t.shared.granted(7, 0.0, T0 / 1000)
    d.wake(t)
    assert len(d.take(T0 + 2)) == 7                                  # exactly what was leased
    assert t.throttled == 0                                          # waiting for a fetch is not throttling
    assert d.token_requests == [t]                                   # spent: the next chunk is asked for
    t.shared.granted(0, 0.0, T0 / 1000)
    # Cooled down: back to the shard's own bucket.
    d.hot(20000, T0 + SPREAD_HOLD_MS + 1)
    assert t.shared is None


def test_hot_targets_are_non_fifo_at_their_cap_and_not_rate_bound() -> None:
    d = Dispatcher(T0, 100, 4)
    plain, fifo, slow = endpoint(d), endpoint(d, fifo=True), endpoint(d, rate_limit_per_sec=1)
    cap = d.hold_cap(plain, 40, T0)
    for target in (plain, fifo, slow):
        for _ in range(cap):
            d.add(target, task(target), T0)
    d.take(T0)
    assert [t for t, _ in d.hot(40, T0)] == [plain]                   # slow: its own rate held it back
    d.take(T0 + 1)
    assert [t for t, _ in d.hot(40, T0 + 1)] == [plain]


def test_a_breaker_opened_elsewhere_opens_here_once() -> None:
    b = CircuitBreaker(3, 1000)
    assert b.adopt_open(T0) and b.state is BreakerState.OPEN and b.opened_at_ms == T0
    assert not b.adopt_open(T0) and not b.adopt_open(T0 - 5)
    assert b.adopt_open(T0 + 10) and b.opened_at_ms == T0 + 10
    assert not b.allow(T0 + 500) and b.allow(T0 + 1010)              # then the usual half-open probe
    assert not b.adopt_open(T0 + 2000)                               # not while the probe is out
    assert not CircuitBreaker(0, 1000).adopt_open(T0)
