"""One API worker's lease on a key's shared token bucket: what it may allow without asking Postgres.

The bucket itself lives in Postgres (`api_rate_buckets`, one per key, shared by every worker on
every host). A worker takes tokens from it in chunks and spends them locally, so a busy key costs
about FETCHES_PER_SECOND round trips a second per worker rather than one per request. Pure: the
caller passes the time (a monotonic clock) and reports what Postgres granted.

- Chunk: max(1, min(limit // FETCHES_PER_SECOND, recent local demand)), where demand is the
  requests this worker saw for the key in the last DEMAND_WINDOW_S. A quiet worker asks for one
  token at a time, so workers sharing a key do not take each other's share.
- Expiry: leased tokens left unspent LEASE_TTL_S after the grant are dropped, not hoarded.
- Empty: when Postgres grants nothing, the worker refuses locally until a whole token can have
  accrued (that wait is also the Retry-After), so refused traffic does not reach Postgres.
- Refusals: counted here until reported to the key's shared count (`report`), which the caller
  does with its next take from the bucket, or in the background when none comes.

Bounds, with W workers holding a lease on one key and c = max(1, limit // FETCHES_PER_SECOND):
over any window of w seconds the shared bucket grants at most limit·(w + 1) tokens (rate plus one
second's burst), and requests allowed in the window are those grants plus tokens leased before it
and not yet spent, at most W·c. So the global count exceeds a single bucket's by at most W·c
(limit 10 on 2 workers: 2; limit 1000 on 8 workers: 800, only if all 8 were busy on the key just
before). It can fall short by the tokens a worker leased and then let expire, at most c per worker
per LEASE_TTL_S, which happens only when that worker's demand stops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FETCHES_PER_SECOND = 10   # a busy key's chunk is a tenth of its limit: ~10 round trips/s per worker
DEMAND_WINDOW_S = 0.1     # chunks follow the demand seen over this window
LEASE_TTL_S = 1.0         # unspent leased tokens are void this long after their grant


@dataclass(slots=True)
class KeyLease:
    limit: int                          # requests per second (> 0)
    tokens: int = 0                     # leased from the shared bucket, not yet spent
    expires_at: float = -math.inf       # leased tokens are void from then
    empty_until: float = -math.inf      # the shared bucket had no whole token: refuse locally until then
    shared_left: float = math.nan       # the shared bucket's tokens after the last grant (nan: never asked)
    seen_at: float = 0.0                # when that was
    unreported: int = 0                 # requests this worker refused, not yet added to the shared count
    _window_start: float = -math.inf
    _window_count: int = 0
    _previous_count: int = 0

    def note_request(self, now: float) -> None:
        """Count one request towards this worker's recent demand for the key."""
        if now >= self._window_start + DEMAND_WINDOW_S:
            recent = now < self._window_start + 2 * DEMAND_WINDOW_S
            self._previous_count = self._window_count if recent else 0
            self._window_start, self._window_count = now, 0
        self._window_count += 1

    def chunk(self) -> int:
        """Tokens to ask Postgres for when the lease runs out."""
        demand = max(self._previous_count, self._window_count)
        return max(1, min(self.limit // FETCHES_PER_SECOND, demand))

    def leased(self, now: float) -> int:
        return self.tokens if now < self.expires_at else 0

    def take(self, now: float) -> bool:
        """Spend one leased token; False when the lease is empty or expired (ask Postgres, or refuse)."""
        if self.leased(now) <= 0:
            return False
        self.tokens -= 1
        return True

    def refuses(self, now: float) -> bool:
        """True while the shared bucket is known to hold no whole token."""
        return now < self.empty_until

    def refuse(self) -> None:
        """Count one request refused (while `refuses`)."""
        self.unreported += 1

    def report(self) -> int:
        """The refusals not yet reported, now handed to the caller to add to the shared count."""
        n, self.unreported = self.unreported, 0
        return n

    def granted(self, n: int, left: float, now: float) -> None:
        """Postgres granted `n` tokens and has `left` after the grant. Replaces the (empty or void) lease."""
        self.tokens, self.expires_at = n, now + LEASE_TTL_S
        self.shared_left, self.seen_at = left, now
        if n > 0:
            self.empty_until = -math.inf
        else:   # refuse at `now` itself even when the wait is below the clock's resolution
            self.empty_until = max(now + max(0.0, 1.0 - left) / self.limit, math.nextafter(now, math.inf))

    def set_limit(self, limit: int, now: float) -> None:
        """The key's limit changed: drop the lease (it was sized for the old limit) and start afresh."""
        if limit == self.limit:
            return
        if not math.isnan(self.shared_left):
            self.shared_left, self.seen_at = min(float(limit), self.shared(now)), now
        self.limit, self.tokens, self.empty_until = limit, 0, -math.inf

    def shared(self, now: float) -> float:
        """The shared bucket's tokens as last seen, refilled since at the key's rate (full if never seen)."""
        if math.isnan(self.shared_left):
            return float(self.limit)
        return min(float(self.limit), self.shared_left + max(0.0, now - self.seen_at) * self.limit)

    def available(self, now: float) -> float:
        """What the key may still spend as this worker sees it: the shared bucket plus its own lease."""
        return min(float(self.limit), self.shared(now) + self.leased(now))

    def remaining(self, now: float) -> int:
        return math.floor(self.available(now))

    def full_in(self, now: float) -> float:
        """Seconds until the bucket is full again (X-RateLimit-Reset)."""
        return (self.limit - self.available(now)) / self.limit

    def retry_after(self, now: float) -> int:
        """Whole seconds a refused client should wait (at least 1)."""
        return max(1, math.ceil(self.empty_until - now))
