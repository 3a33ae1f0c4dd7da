"""A worker's lease on a key's shared bucket: chunk size, expiry, local refusal, and the global bound
checked against a model of the Postgres bucket (`rate_bucket_take`) shared by several workers."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from control.policy.rate_lease import DEMAND_WINDOW_S, FETCHES_PER_SECOND, LEASE_TTL_S, KeyLease

EPS = 1e-9


class SharedBucket:
    """What `rate_bucket_take` computes: refill by elapsed time * rate, capped at one second's worth,
    grant min(wanted, whole tokens), and add the refusals the taker reports to the key's count."""

    def __init__(self, rate: int) -> None:
        self.rate, self.tokens, self.at, self.refused = rate, float(rate), 0.0, 0

    def level(self, now: float) -> float:
        return min(float(self.rate), self.tokens + max(0.0, now - self.at) * self.rate)

    def take(self, wanted: int, now: float, refused: int = 0) -> tuple[int, float]:
        self.refused += refused
        self.tokens, self.at = self.level(now), max(self.at, now)
        granted = min(wanted, math.floor(self.tokens))
        self.tokens -= granted
        return granted, self.tokens


def request(lease: KeyLease, shared: SharedBucket, now: float) -> bool:
    """One request as ApiRateLimiter.take handles it, the fetch answered at once."""
    lease.note_request(now)
    for _ in range(100):   # each round asks the bucket once; a grant of 0 must end it
        if lease.take(now):
            return True
        if lease.refuses(now):
            lease.refuse()
            return False
        granted, left = shared.take(lease.chunk(), now, lease.report())
        lease.granted(granted, left, now)
    raise AssertionError("the lease keeps asking without allowing or refusing")


def test_a_quiet_key_asks_for_one_token_a_busy_one_for_a_tenth_of_its_limit() -> None:
    lease = KeyLease(1000)
    lease.note_request(0.0)
    assert lease.chunk() == 1
    for i in range(500):
        lease.note_request(0.001 * i)
    assert lease.chunk() == 100                        # capped at limit / FETCHES_PER_SECOND
    assert KeyLease(5).chunk() == 1                    # a small limit: one token at a time
    later = 10 * DEMAND_WINDOW_S
    lease.note_request(later)                          # demand from long ago is forgotten
    assert lease.chunk() == 1


def test_demand_of_the_previous_window_sizes_the_next_chunk() -> None:
    lease = KeyLease(1000)
    for i in range(30):
        lease.note_request(i * DEMAND_WINDOW_S / 30)
    lease.note_request(DEMAND_WINDOW_S * 1.01)         # a new window: the last one's 30 still count
    assert lease.chunk() == 30


def test_leased_tokens_are_spent_then_expire() -> None:
    lease = KeyLease(100)
    assert not lease.take(0.0)                         # nothing leased yet
    lease.granted(3, 97.0, 0.0)
    assert [lease.take(0.1) for _ in range(2)] == [True, True]
    assert lease.leased(0.1) == 1
    assert not lease.take(LEASE_TTL_S)                 # the last one was not used in time: void
    assert lease.leased(LEASE_TTL_S) == 0


def test_an_empty_shared_bucket_is_remembered_until_a_token_can_exist() -> None:
    lease = KeyLease(4)
    lease.granted(0, 0.5, 10.0)                        # half a token: the next is 1/8 s away
    assert lease.refuses(10.0) and lease.refuses(10.12)
    assert not lease.refuses(10.125 + EPS)
    assert lease.retry_after(10.0) == 1
    assert lease.remaining(10.0) == 0
    lease.granted(1, 0.0, 11.0)                        # a grant clears it
    assert not lease.refuses(11.0)


def test_refusals_are_handed_over_once_for_the_shared_count() -> None:
    lease = KeyLease(1)
    lease.granted(0, 0.0, 0.0)
    for _ in range(3):
        assert lease.refuses(0.5)
        lease.refuse()
    assert lease.report() == 3
    assert lease.report() == 0                         # reported: not counted twice
    lease.refuse()
    assert lease.unreported == 1


def test_remaining_and_reset_follow_the_shared_bucket_as_last_seen() -> None:
    lease = KeyLease(10)
    assert lease.remaining(0.0) == 10 and lease.full_in(0.0) == 0   # never seen: full
    lease.granted(1, 6.0, 0.0)
    assert lease.available(0.0) == 7.0                 # the lease counts: this worker may spend it
    assert lease.take(0.0) and lease.remaining(0.0) == 6
    assert math.isclose(lease.full_in(0.0), 0.4)
    assert lease.remaining(0.25) == 8                  # refilled at the key's rate since
    assert lease.remaining(5.0) == 10                  # never above the limit


def test_a_changed_limit_drops_the_lease_and_caps_what_was_seen() -> None:
    lease = KeyLease(100)
    lease.granted(10, 80.0, 0.0)
    lease.set_limit(20, 0.0)
    assert lease.limit == 20 and lease.leased(0.0) == 0 and lease.remaining(0.0) == 20
    lease.granted(0, 0.2, 1.0)
    lease.set_limit(50, 1.0)                           # raised: no longer known to be empty
    assert not lease.refuses(1.0) and lease.chunk() == 1
    lease.set_limit(50, 1.0)
    assert lease.limit == 50


schedules = st.lists(st.tuples(st.floats(0.0, 3.0, allow_nan=False), st.integers(0, 3)), min_size=1,
                     max_size=300)


@given(schedules, st.sampled_from([1, 3, 10, 25, 100, 1000]), st.integers(1, 4))
def test_workers_together_stay_within_the_documented_bound(events: list[tuple[float, int]], limit: int,
                                                           workers: int) -> None:
    """Over any window of w seconds, W workers allow at most limit·(w + 1) + W·c, c the largest chunk."""
    shared = SharedBucket(limit)
    leases = [KeyLease(limit) for _ in range(workers)]
    outcomes = [(t, request(leases[w % workers], shared, t)) for t, w in sorted(events)]
    allowed = sorted(t for t, ok in outcomes if ok)
    assert shared.refused + sum(lease.unreported for lease in leases) == len(outcomes) - len(allowed)
    chunk = max(1, limit // FETCHES_PER_SECOND)
    for i, start in enumerate(allowed):
        for width in (0.0, 0.1, 0.5, 1.0, 2.0):
            inside = sum(1 for t in allowed[i:] if t <= start + width)
            assert inside <= limit * (width + 1) + workers * chunk + EPS, (start, width, inside)


@given(schedules, st.sampled_from([1, 3, 10, 100, 1000]))
def test_one_worker_is_refused_only_when_the_shared_bucket_is_empty(events: list[tuple[float, int]],
                                                                    limit: int) -> None:
    shared = SharedBucket(limit)
    lease = KeyLease(limit)
    refused = 0
    for t, _ in sorted(events):
        if not request(lease, shared, t):
            refused += 1
            assert shared.level(t) < 1 + EPS
            assert lease.retry_after(t) >= 1
        assert 0 <= lease.remaining(t) <= limit
        assert 1 <= lease.chunk() <= max(1, limit // FETCHES_PER_SECOND)
    # each refusal counted once: reported with a later take, or still to report
    assert shared.refused + lease.unreported == refused
