"""The retry policy: what a finished attempt leads to. Pure, so every rule is checked alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.policy.retry import AttemptResult, NewerCopy, RetrySettings, decide

NOW = 1_700_000_000_000
RS = RetrySettings(base_ms=1000, mult=2.0, cap_ms=60_000)
OK = AttemptResult(success=True, permanent=False, status_code=200)
FAIL = AttemptResult(success=False, permanent=False, status_code=500)


def run(result: AttemptResult = FAIL, **kw: object) -> object:
    args: dict[str, object] = dict(attempts_before=0, max_attempts=5, settings=RS, now_ms=NOW, jitter=0.5,
                                   horizon_ms=300_000, fifo=False)
    args.update(kw)
    return decide(result, **args)  # type: ignore[arg-type]


def test_success_is_final_and_counts_the_attempt() -> None:
    d = run(OK, attempts_before=2)
    assert (d.status, d.attempts, d.prior_attempts, d.keep_claim) == ("delivered", 3, 2, False)


def test_permanent_refusal_and_last_attempt_are_dead() -> None:
    assert run(AttemptResult(False, True, 410)).status == "dead"
    assert run(attempts_before=4, max_attempts=5).status == "dead"
    assert run(attempts_before=3, max_attempts=5).status == "failed"


def test_backoff_and_retry_after_bounded_by_the_cap() -> None:
    d = run(attempts_before=2)           # third attempt failed: 4 s raw, 3 s with jitter 0.5
    assert d.status == "failed" and d.next_attempt_ms == NOW + 3000 and d.keep_claim
    slow = run(AttemptResult(False, False, 429, "120"))
    assert slow.next_attempt_ms == NOW + 60_000, "Retry-After honoured up to the backoff cap"
    asked = run(AttemptResult(False, False, 503, "10"))
    assert asked.next_attempt_ms == NOW + 10_000
    ignored = run(AttemptResult(False, False, 500, "10"))
    assert ignored.next_attempt_ms == NOW + 750, "only 429 and 503 may ask"


def test_retry_beyond_the_horizon_goes_back_to_postgres_unless_fifo() -> None:
    assert not run(horizon_ms=100).keep_claim
    assert run(horizon_ms=100, fifo=True).keep_claim, "a FIFO head stays: its key waits for it"
    assert not run(may_keep=False).keep_claim, "a copy whose event moved away gives its claim up"


def test_replay_while_in_flight_wins_whatever_the_result() -> None:
    for result in (OK, FAIL, AttemptResult(False, True, 410)):
        d = run(result, attempts_before=3, newer=NewerCopy(attempts=0, due_ms=NOW + 5))
        assert (d.status, d.attempts, d.prior_attempts, d.next_attempt_ms, d.keep_claim) == \
            ("queued", 0, 0, NOW + 5, True)


def test_edit_while_in_flight_keeps_counting_and_its_schedule() -> None:
    d = run(attempts_before=1, newer=NewerCopy(attempts=1, due_ms=NOW + 50_000))
    assert (d.status, d.attempts, d.prior_attempts) == ("failed", 2, 1)
    assert d.next_attempt_ms == NOW + 50_000, "the later of backoff and the edit's schedule"
    assert run(OK, attempts_before=1, newer=NewerCopy(attempts=1, due_ms=NOW)).status == "delivered"


@given(st.integers(0, 30), st.integers(1, 30), st.booleans(), st.booleans(), st.floats(0, 1))
def test_counters_always_move_by_one(before: int, max_attempts: int, success: bool, permanent: bool,
                                     jitter: float) -> None:
    d = run(AttemptResult(success, permanent, 200 if success else 500), attempts_before=before,
            max_attempts=max_attempts, jitter=jitter)
    assert d.attempts == before + 1 and d.prior_attempts == before
    assert d.next_attempt_ms >= NOW
    assert d.status in ("delivered", "failed", "dead")
    assert (d.status == "failed") == (not success and not permanent and before + 1 < max_attempts)
