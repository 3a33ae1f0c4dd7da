"""Per-endpoint circuit breaker: stop hammering a receiver that keeps failing.

After ``threshold`` consecutive failures the breaker opens; after ``reset_ms`` it lets a
single probe through (half-open). The probe's outcome closes or re-opens it. Transitions
are reported by the ``record_*`` return values so the caller can persist them.
"""

from __future__ import annotations

from enum import StrEnum


class BreakerState(StrEnum):
    """Persisted breaker state (values are stored as text)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe; threshold 0 disables it."""

    __slots__ = ("_failures", "_opened_at_ms", "_probing", "_reset_ms", "_state", "_threshold")

    def __init__(
        self,
        threshold: int,
        reset_ms: int,
        state: BreakerState = BreakerState.CLOSED,
        opened_at_ms: int | None = None,
        failures: int = 0,
    ) -> None:
        if threshold < 0:
            raise ValueError("threshold must be >= 0")
        if reset_ms < 0:
            raise ValueError("reset_ms must be >= 0")
        self._threshold = threshold
        self._reset_ms = reset_ms
        self._state = BreakerState(state)
        self._opened_at_ms = opened_at_ms
        self._failures = max(failures, 0)
        self._probing = False  # a half-open probe was let through and is not yet recorded
        if threshold == 0:
            self._state, self._opened_at_ms = BreakerState.CLOSED, None
        elif self._state is BreakerState.OPEN and opened_at_ms is None:
            # Restored without an opening time: the reset delay cannot be honoured, so probe.
            self._state = BreakerState.HALF_OPEN
        elif self._state is BreakerState.CLOSED:
            self._opened_at_ms = None

    @property
    def state(self) -> BreakerState:
        """Stored state; an OPEN breaker past its reset time still reads OPEN here."""
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures recorded since the last success."""
        return self._failures

    @property
    def opened_at_ms(self) -> int | None:
        """When the breaker last opened (None when closed)."""
        return self._opened_at_ms

    @property
    def threshold(self) -> int:
        return self._threshold

    @property
    def reset_ms(self) -> int:
        return self._reset_ms

    def _reset_due(self, now_ms: int) -> bool:
        return self._opened_at_ms is None or now_ms >= self._opened_at_ms + self._reset_ms

    def allow(self, now_ms: int) -> bool:
        """May a request be sent now? In half-open only one probe is admitted."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._reset_due(now_ms):
                return False
            self._state = BreakerState.HALF_OPEN
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self, now_ms: int) -> bool:
        """A delivery succeeded: close. Returns True if the state changed."""
        self._failures = 0
        self._probing = False
        if self._state is BreakerState.CLOSED:
            return False
        self._state, self._opened_at_ms = BreakerState.CLOSED, None
        return True

    def record_failure(self, now_ms: int) -> bool:
        """A delivery failed: count it; open at the threshold. Returns True if the state changed."""
        self._failures += 1
        if self._threshold == 0:
            return False
        if self._state is BreakerState.HALF_OPEN:
            self._probing = False
            self._state, self._opened_at_ms = BreakerState.OPEN, now_ms
            return True
        if self._state is BreakerState.CLOSED and self._failures >= self._threshold:
            self._state, self._opened_at_ms = BreakerState.OPEN, now_ms
            return True
        return False  # a late failure while already open does not extend the open period

    def adopt_open(self, opened_at_ms: int) -> bool:
        """Another shard sending the same (spread) endpoint opened its breaker, as Postgres shows:
        open here too, from that moment, unless this one is already open since then or later.
        Returns True when the state changed. A half-open probe in flight finishes as usual."""
        if self._threshold == 0 or self._probing:
            return False
        if self._state is BreakerState.OPEN and (self._opened_at_ms or 0) >= opened_at_ms:
            return False
        if self._state is BreakerState.CLOSED or (self._opened_at_ms or 0) < opened_at_ms:
            self._state, self._opened_at_ms = BreakerState.OPEN, opened_at_ms
            return True
        return False

    def state_at(self, now_ms: int) -> BreakerState:
        """State as seen at ``now_ms``: OPEN past its reset time reads HALF_OPEN (no side effect)."""
        if self._state is BreakerState.OPEN and self._reset_due(now_ms):
            return BreakerState.HALF_OPEN
        return self._state

    def retry_at_ms(self) -> int | None:
        """When an OPEN breaker will admit a probe; None unless OPEN."""
        if self._state is BreakerState.OPEN and self._opened_at_ms is not None:
            return self._opened_at_ms + self._reset_ms
        return None
