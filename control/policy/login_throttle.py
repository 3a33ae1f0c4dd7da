"""Failed-login throttling: which counters an attempt takes, and whether it may go ahead.

Every login attempt first takes one from the counter of its e-mail address and of its client
address (`login_throttle`, in Postgres, so every API worker and host shares them) and is refused
once a counter is past its limit; the attempt is counted before the password is checked, so even
concurrent guesses cannot exceed the limit. A successful login clears its e-mail's counter and gives
its client address's attempt back. A counter restarts once its window has passed. A limit of 0
turns that counter off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    per_email: int
    per_ip: int
    window_s: float


def email_key(email: str) -> str:
    return f"email:{email}"


def ip_key(ip: str) -> str:
    return f"ip:{ip}"


def signup_key(ip: str) -> str:
    """Sign-ups from one client address (each costs an argon2 hash and a workspace)."""
    return f"signup-ip:{ip}"


def sso_start_key(ip: str) -> str:
    """Single sign-on starts from one client address (each stores a state row until it expires)."""
    return f"sso-ip:{ip}"


ADDRESS_KEYS = ("ip:", "signup-ip:", "sso-ip:")


def throttle_keys(email: str, ip: str | None, limits: ThrottleLimits) -> list[str]:
    """The counters one attempt takes, e-mail first (a fixed order: concurrent upserts never deadlock)."""
    keys = []
    if limits.per_email > 0:
        keys.append(email_key(email))
    if limits.per_ip > 0 and ip:
        keys.append(ip_key(ip))
    return keys


def limit_of(key: str, limits: ThrottleLimits) -> int:
    """A client address's counter has the per-address limit; the others count per e-mail address."""
    return limits.per_ip if key.startswith(ADDRESS_KEYS) else limits.per_email


def retry_after(counts: list[tuple[str, int, float]], limits: ThrottleLimits) -> int | None:
    """Seconds to wait when a counter (key, attempts in this window, seconds left in it) is past its
    limit, else None. Whole seconds, at least 1, for the Retry-After header."""
    waits = [remaining for key, attempts, remaining in counts if 0 < limit_of(key, limits) < attempts]
    if not waits:
        return None
    return max(1, math.ceil(max(waits)))
