"""Token bucket rate limiter with lazy refill (no timers, time passed in).

Used to cap requests per second to one endpoint: a bucket of ``burst`` tokens refills at
``rate`` tokens per second, so over any window of ``w`` seconds at most ``rate*w + burst``
tokens can be taken.
"""

from __future__ import annotations

import math

# Float slack so that waiting exactly ``wait_time`` is always enough despite rounding.
_EPSILON = 1e-9


def _check(rate_per_sec: float, burst: float | None) -> tuple[float, float]:
    if not math.isfinite(rate_per_sec) or rate_per_sec < 0:
        raise ValueError(f"rate must be a finite number >= 0, got {rate_per_sec!r}")
    capacity = max(1.0, float(rate_per_sec)) if burst is None else float(burst)
    if not math.isfinite(capacity) or capacity <= 0:
        raise ValueError(f"burst must be a finite number > 0, got {burst!r}")
    return float(rate_per_sec), capacity


class TokenBucket:
    """Allows ``rate`` takes per second on average and ``burst`` at once; rate 0 = unlimited."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate_per_sec: float, burst: float | None = None, now: float = 0.0) -> None:
        self._rate, self._burst = _check(rate_per_sec, burst)
        self._tokens = self._burst
        self._last = now

    @property
    def rate(self) -> float:
        """Tokens added per second (0 = unlimited)."""
        return self._rate

    @property
    def burst(self) -> float:
        """Capacity: the most tokens that can be taken at once."""
        return self._burst

    @property
    def unlimited(self) -> bool:
        """True when the bucket never refuses (rate 0)."""
        return self._rate == 0

    def _refill(self, now: float) -> None:
        # A clock that goes backwards adds nothing and never re-credits the same interval.
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now

    def try_take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if available; never blocks."""
        if self._rate == 0:
            return True
        self._refill(now)
        if self._tokens + _EPSILON >= n:
            self._tokens -= n
            return True
        return False

    def wait_time(self, now: float, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are available (inf if ``n`` exceeds the burst)."""
        if self._rate == 0:
            return 0.0
        self._refill(now)
        missing = n - self._tokens
        if missing <= _EPSILON:
            return 0.0
        if n > self._burst + _EPSILON:
            return math.inf
        return missing / self._rate

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (for metrics); inf when unlimited."""
        if self._rate == 0:
            return math.inf
        self._refill(now)
        return max(self._tokens, 0.0)

    def set_rate(self, rate_per_sec: float, burst: float | None, now: float) -> None:
        """Change rate and capacity without granting or losing what was already earned."""
        rate, capacity = _check(rate_per_sec, burst)
        if self._rate == 0:
            self._tokens = capacity  # leaving "unlimited": start full, like a new bucket
        else:
            self._refill(now)
            self._tokens = min(self._tokens, capacity)
        self._last = max(self._last, now)
        self._rate, self._burst = rate, capacity
