"""Hot targets: a non-FIFO target with more backlog than its shard can send is spread over others.

Every delivery of a target (an endpoint, or a direct destination's origin) is stored in the
target's home partition, `partition_for(target key)`, so one shard sends all of it. When that shard
holds at least half its share of the target (`hold_cap`: about two seconds of sending) right after
a claim and is not held back by the target's own rate limit or breaker, any backlog beyond that is
more than it can send soon.
The home shard then moves part of the target's unclaimed backlog to *helper partitions*, one in the
range of each of up to `width - 1` other shards; those shards claim it there like any other work.
The home shard keeps the accounting: it alone decides what moves, keeps each helper partition
topped up to about one cap of waiting tasks (a helper that sends faster gets refilled sooner), and
stops when the target cools down. FIFO targets never spread: one shard keeps their order.

While a rate-limited target is spread, every shard sending it spends tokens leased from one bucket
in Postgres (the API keys' shared bucket, control/policy/rate_lease.py) instead of a bucket of its
own, so the endpoint's rate holds across all of them (`SharedRate`).

Pure: times and ranges are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from control.policy.rate_lease import KeyLease

SPREAD_HOLD_MS = 10_000    # a target counts as spread this long after its last move or helper claim
FETCH_WAIT_S = 0.005       # retry this soon after asking Postgres for tokens


def helper_partitions(home: int, ranges: Sequence[tuple[int, int]], width: int) -> list[int]:
    """One partition in each of up to `width - 1` other shards' ranges, in the order the ranges
    follow the home's (wrapping around), at the same offset in the range as `home` in its own
    (so different targets land on different partitions). Empty ranges are skipped; a home that no
    range holds, or a width below 2, gets no helpers."""
    live = sorted(r for r in ranges if r[1] > r[0])
    own = next((i for i, (lo, hi) in enumerate(live) if lo <= home < hi), None)
    if own is None or width < 2:
        return []
    offset = home - live[own][0]
    out: list[int] = []
    for step in range(1, min(width, len(live))):
        lo, hi = live[(own + step) % len(live)]
        out.append(lo + offset % (hi - lo))
    return out


def top_up(helpers: Sequence[int], waiting: Sequence[int], cap: int) -> list[int]:
    """Destinations of the tasks to move now, one entry per task: each helper partition is filled
    up to `cap` waiting tasks of the target. Interleaved, so that when the home has fewer tasks to
    give than asked, every helper still gets its share of them."""
    wants = [max(0, cap - w) for w, _ in zip(waiting, helpers, strict=True)]
    out: list[int] = []
    for turn in range(max(wants, default=0)):
        out.extend(p for p, want in zip(helpers, wants, strict=True) if want > turn)
    return out


def is_hot(*, fifo: bool, blocked: bool, breaker_closed: bool, held: int, cap: int, throttled: bool) -> bool:
    """Spread a target when its shard holds at least half of all it may of it right after a claim
    (a second or more of sending: a fast target is already being sent from while the claim's reply
    comes in) and only the shard's own pace holds it back: not FIFO, not paused, breaker closed, and
    its rate limit did not make it wait since the last look (spreading a target held back by its
    rate gains nothing). Whether more waits in Postgres is for the move itself to find out."""
    return not fifo and not blocked and breaker_closed and not throttled and cap > 0 and 2 * held >= cap


class SharedRate:
    """A spread endpoint's rate limit, as one shard spends it: tokens leased in chunks from the
    endpoint's bucket in Postgres. `wait` says how long to wait before sending; when the lease is
    empty and Postgres has not said the bucket is, `wanted` asks the shard to fetch a chunk."""

    __slots__ = ("fetching", "lease", "wanted")

    def __init__(self, rate: int) -> None:
        self.lease = KeyLease(rate)
        self.wanted = False
        self.fetching = False

    @property
    def rate(self) -> int:
        return self.lease.limit

    def wait(self, now: float) -> float:
        if self.lease.leased(now) > 0:
            return 0.0
        if self.lease.refuses(now):
            return self.lease.empty_until - now
        if not self.fetching:
            self.wanted = True
        return FETCH_WAIT_S

    def take(self, now: float) -> bool:
        self.lease.note_request(now)
        return self.lease.take(now)

    def chunk(self) -> int:
        """Tokens to ask for: the KeyLease rule (a tenth of the rate, or the recent demand)."""
        return self.lease.chunk()

    def granted(self, n: int, left: float, now: float) -> None:
        self.fetching = False
        self.lease.granted(n, left, now)

    def failed(self, now: float) -> None:
        """The fetch failed: wait a moment before asking again (nothing is sent meanwhile)."""
        self.fetching = False
        self.lease.empty_until = max(self.lease.empty_until, now + 0.5, math.nextafter(now, math.inf))
