"""Why an undelivered delivery waits, and until when.

Derived at read time from the task row and its endpoint's stored state, so that an event can say
what holds it up without asking the shard that holds it. The first reason that applies wins: an
attempt in flight is not waiting at all; a paused endpoint or an open breaker holds a delivery
whatever its own due time; then its own schedule (a retry backoff or `delaySeconds`); then what a
due delivery still waits for (its poll consumer, a rate-limit token, a shard to pick it up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

REASONS = ("in_flight", "endpoint_paused", "circuit_open", "retry_scheduled", "delayed", "awaiting_poll",
           "rate_limited", "queued")
PENDING_STATUSES = ("queued", "delivering", "failed")


@dataclass(frozen=True, slots=True)
class EndpointState:
    status: str                      # active | paused
    delivery_mode: str               # push | poll | storage
    rate_limit_per_sec: int
    circuit_state: str               # closed | open | half_open
    circuit_threshold: int           # 0: no breaker
    circuit_opened_at: datetime | None
    circuit_reset_ms: int


@dataclass(frozen=True, slots=True)
class PendingTask:
    status: str                      # one of PENDING_STATUSES
    attempts: int
    next_attempt_at: datetime
    poll_visible_at: datetime | None  # a poll hand-out hides the delivery until then
    endpoint: EndpointState | None   # None: a direct destination (no breaker, no rate limit)


def waiting(task: PendingTask, now: datetime) -> tuple[str, datetime | None]:
    """(reason, the earliest time the next attempt can start). The time is None when none is
    known: the attempt is in flight, or the endpoint is paused until someone resumes it. A time
    in the past means the delivery is due and waits only for what the reason says."""
    ep = task.endpoint
    if task.status == "delivering":
        return "in_flight", None
    if ep is not None and ep.status == "paused":
        return "endpoint_paused", None
    pushed = ep is None or ep.delivery_mode != "poll"     # storage and broker endpoints are sent to as well
    if pushed and ep is not None and ep.circuit_threshold > 0 and ep.circuit_state in ("open", "half_open"):
        probe_at = task.next_attempt_at
        if ep.circuit_opened_at is not None:
            probe_at = max(probe_at, ep.circuit_opened_at + timedelta(milliseconds=ep.circuit_reset_ms))
        return "circuit_open", probe_at
    if task.next_attempt_at > now:
        return ("retry_scheduled" if task.attempts > 0 else "delayed"), task.next_attempt_at
    if ep is not None and ep.delivery_mode == "poll":
        offered = task.next_attempt_at
        if task.poll_visible_at is not None:
            offered = max(offered, task.poll_visible_at)
        return "awaiting_poll", offered
    if pushed and ep is not None and ep.rate_limit_per_sec > 0:
        return "rate_limited", task.next_attempt_at
    return "queued", task.next_attempt_at
