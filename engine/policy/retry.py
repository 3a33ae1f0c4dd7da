"""What a finished attempt leads to: delivered, retried (when, and held in memory or not), or dead.

Pure: the shard passes in the attempt's result, the task's counters, the retry settings, the clock
and a random draw, and records what comes back. Keeping the decision here (not in the shard's I/O
code) is what lets every rule below be tested on its own:

- success is final; so is a permanent refusal (SSRF block, 410 Gone, a cancelling transformation)
  and running out of attempts;
- otherwise the next try comes after capped exponential backoff with jitter, or later when a 429 or
  503 asks for it with Retry-After (never past the endpoint's backoff cap);
- a copy of the task claimed again while this attempt was on the wire (a replay or an edit) wins:
  its content is what the next try sends, and a replay's reset attempt counter is what the task
  keeps, whatever this attempt's result;
- a retry due within the claim horizon stays in memory (the shard keeps its claim); a later one goes
  back to Postgres. A FIFO head always stays: the keys behind it must wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.policy.backoff import backoff_delay_ms, parse_retry_after

RETRY_AFTER_STATUSES = (429, 503)
TaskStatus = Literal["delivered", "failed", "dead", "queued"]


@dataclass(frozen=True, slots=True)
class RetrySettings:
    base_ms: int
    mult: float
    cap_ms: int


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The parts of a send result the decision needs."""

    success: bool
    permanent: bool
    status_code: int | None = None
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class NewerCopy:
    """The task as claimed again while this attempt was in flight."""

    attempts: int
    due_ms: int


@dataclass(frozen=True, slots=True)
class Decision:
    status: TaskStatus
    attempts: int           # the task's attempt count once this outcome is recorded
    prior_attempts: int     # the count the database holds for the task before it is recorded
    next_attempt_ms: int    # when the next try is due (now for final states)
    keep_claim: bool        # the shard keeps the task in memory for its next try

    @property
    def retrying(self) -> bool:
        return self.status in ("failed", "queued")


def decide(result: AttemptResult, *, attempts_before: int, max_attempts: int, settings: RetrySettings,
           now_ms: int, jitter: float, horizon_ms: int, fifo: bool, may_keep: bool = True,
           newer: NewerCopy | None = None) -> Decision:
    """The task's next state after one attempt. `attempts_before` counts the attempts recorded
    before this one; `may_keep` is False when the copy that was sent no longer belongs here (its
    event moved to another destination meanwhile) so its claim must be given up."""
    if newer is not None and newer.attempts < attempts_before:
        # Replayed while on the wire: the reset counter and the replay's schedule win.
        status: TaskStatus = "queued" if newer.attempts == 0 else "failed"
        return Decision(status, newer.attempts, newer.attempts, newer.due_ms, True)
    attempts = attempts_before + 1
    if result.success:
        return Decision("delivered", attempts, attempts_before, now_ms, False)
    if result.permanent or attempts >= max_attempts:
        return Decision("dead", attempts, attempts_before, now_ms, False)
    delay = backoff_delay_ms(attempts, settings.base_ms, settings.mult, settings.cap_ms, jitter)
    if result.status_code in RETRY_AFTER_STATUSES:
        wait = parse_retry_after(result.retry_after, now_ms / 1000)
        if wait is not None:
            delay = min(max(delay, int(wait * 1000)), settings.cap_ms)
    due = now_ms + delay
    if newer is not None:
        due = max(due, newer.due_ms)   # edited meanwhile: the edit's schedule, if later, holds
    keep = (fifo or delay <= horizon_ms) and may_keep
    return Decision("failed", attempts, attempts_before, due, keep)
