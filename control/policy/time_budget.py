"""Each tenant's share of a process's time, so one tenant's heavy work cannot monopolise it.

A leaky bucket per tenant, in milliseconds, with time passed in: what a tenant spent drains at
`ms_per_s` per second, and a tenant whose undrained spending has reached one second's allowance
waits until it drains below. The cost of a call is only known after it ran, so it is charged then;
a tenant can overshoot by at most one call. Over any window of W seconds a tenant is let spend at
most `ms_per_s * (1 + W)` plus one call.
"""

from __future__ import annotations

import math

_MIN_PRUNE = 1024


class TimeBudget:
    """`retry_after_ms` before running a tenant's call, `charge` after; ms_per_s <= 0 = unlimited."""

    __slots__ = ("_prune_at", "_rate", "_tenants", "ms_per_s")

    def __init__(self, ms_per_s: float) -> None:
        if not math.isfinite(ms_per_s):
            raise ValueError(f"ms_per_s must be finite, got {ms_per_s!r}")
        self.ms_per_s = max(0.0, float(ms_per_s))
        self._rate = self.ms_per_s / 1000.0        # ms drained per ms of time
        self._tenants: dict[str, tuple[float, float]] = {}   # tenant -> (spent, at now_ms)
        self._prune_at = _MIN_PRUNE

    def __len__(self) -> int:
        return len(self._tenants)

    def _spent(self, tenant: str, now_ms: float) -> float:
        found = self._tenants.get(tenant)
        if found is None:
            return 0.0
        spent, at = found
        return max(0.0, spent - max(0.0, now_ms - at) * self._rate)

    def retry_after_ms(self, tenant: str, now_ms: float) -> int:
        """0 if `tenant` may run now, else the whole milliseconds until it may."""
        if self._rate == 0:
            return 0
        over = self._spent(tenant, now_ms) - self.ms_per_s
        return 0 if over < 0 else math.floor(over / self._rate) + 1

    def charge(self, tenant: str, now_ms: float, cost_ms: float) -> None:
        """Record that `tenant` just spent `cost_ms` (negative costs count as 0)."""
        if self._rate == 0:
            return
        self._tenants[tenant] = (self._spent(tenant, now_ms) + max(0.0, cost_ms), now_ms)
        if len(self._tenants) > self._prune_at:
            self._prune(now_ms)

    def _prune(self, now_ms: float) -> None:
        """Forget tenants whose spending has drained, so the table follows the active tenants."""
        self._tenants = {t: v for t, v in self._tenants.items() if self._spent(t, now_ms) > 0}
        self._prune_at = max(_MIN_PRUNE, 2 * len(self._tenants))
