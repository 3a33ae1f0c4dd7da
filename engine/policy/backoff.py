"""Retry delays: capped exponential backoff with equal jitter, and Retry-After parsing.

Jitter spreads retries of many failed deliveries so a recovering receiver is not hit by a
synchronized wave; "equal jitter" keeps at least half the delay so retries never bunch up
near zero. Randomness and time are passed in, which keeps this deterministic to test.
"""

from __future__ import annotations

import math
import re
from datetime import UTC
from email.utils import parsedate_to_datetime

_SECONDS = re.compile(r"[+-]?\d+(?:\.\d+)?")


def backoff_delay_ms(attempt: int, base_ms: int, mult: float, max_ms: int, jitter: float) -> int:
    """Delay before the retry that follows failed attempt ``attempt`` (1-based).

    raw = min(base_ms * mult**(attempt-1), max_ms); result = raw/2 + jitter*raw/2, rounded,
    within [0, max_ms]. ``jitter`` is a caller-supplied random float in [0, 1).
    """
    if not math.isfinite(mult) or mult < 0:
        raise ValueError(f"backoff multiplier must be a finite number >= 0, got {mult!r}")
    cap = max(max_ms, 0)
    raw = 0.0
    if base_ms > 0:
        exponent = max(attempt, 1) - 1
        try:
            grown = base_ms * mult**exponent
        except OverflowError:  # mult**exponent beyond float range: certainly above the cap
            grown = math.inf
        raw = min(grown, float(cap))
    jitter = min(max(jitter, 0.0), 1.0) if math.isfinite(jitter) else 0.0
    delay = math.floor(raw / 2 + jitter * raw / 2 + 0.5)
    return max(0, min(delay, cap))


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds to wait per a Retry-After header (delta-seconds or HTTP-date).

    None when absent or unparsable, so the caller falls back to its own backoff; a value
    in the past (or negative) means "now", i.e. 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC without a source zone
            when = when.replace(tzinfo=UTC)
        try:
            seconds = when.timestamp() - now_epoch_s
        except (OverflowError, ValueError, OSError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
