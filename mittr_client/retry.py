"""When to try a request again, and after how long: pure, so both clients share it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in all (1 = never retry); exponential backoff with full jitter between half and
    all of `min(base * 2^(n-1), cap)`; a server's Retry-After wins, up to `max_retry_after`."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before attempt `attempt + 1`, after `attempt` failed ones (attempt >= 1)."""
        ceiling = min(self.base * 2.0 ** (attempt - 1), self.cap)
        fraction: float = (rng or random).random()
        return ceiling * (0.5 + 0.5 * fraction)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float | None:
        """Seconds to wait before trying again, or None when the attempts are spent (or the server
        asks for longer than we are willing to wait)."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return self.backoff(attempt, rng)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
