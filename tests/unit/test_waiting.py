"""Why a pending delivery waits and until when (control/policy/waiting.py), without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from control.policy.waiting import PENDING_STATUSES, REASONS, EndpointState, PendingTask, waiting

NOW = datetime(2026, 4, 17, 10, 0, tzinfo=UTC)
PUSH = EndpointState("active", "push", 0, "closed", 5, None, 300_000)


def task(ep: EndpointState | None = PUSH, status: str = "queued", attempts: int = 0,
         due_in: timedelta = timedelta(0), visible_in: timedelta | None = None) -> PendingTask:
    return PendingTask(status, attempts, NOW + due_in, None if visible_in is None else NOW + visible_in, ep)


def test_each_reason() -> None:
    later = timedelta(minutes=10)
    assert waiting(task(status="delivering"), NOW) == ("in_flight", None)
    assert waiting(task(replace(PUSH, status="paused"), due_in=later), NOW) == ("endpoint_paused", None)
    assert waiting(task(attempts=3, status="failed", due_in=later), NOW) == ("retry_scheduled", NOW + later)
    assert waiting(task(due_in=later), NOW) == ("delayed", NOW + later)
    assert waiting(task(replace(PUSH, rate_limit_per_sec=20)), NOW) == ("rate_limited", NOW)
    assert waiting(task(replace(PUSH, delivery_mode="poll")), NOW) == ("awaiting_poll", NOW)
    assert waiting(task(), NOW) == ("queued", NOW)
    assert waiting(task(None, due_in=-later), NOW) == ("queued", NOW - later)


def test_an_open_breaker_holds_until_its_reset_or_the_tasks_own_time_whichever_is_later() -> None:
    opened = NOW - timedelta(minutes=1)
    tripped = replace(PUSH, circuit_state="open", circuit_opened_at=opened)
    assert waiting(task(tripped), NOW) == ("circuit_open", opened + timedelta(minutes=5))
    assert waiting(task(tripped, attempts=2, status="failed", due_in=timedelta(hours=1)), NOW) == (
        "circuit_open", NOW + timedelta(hours=1))
    assert waiting(task(replace(tripped, circuit_state="half_open")), NOW)[0] == "circuit_open"
    assert waiting(task(replace(tripped, circuit_opened_at=None)), NOW) == ("circuit_open", NOW)
    # threshold 0 disables the breaker: a stale stored state holds nothing
    assert waiting(task(replace(tripped, circuit_threshold=0)), NOW) == ("queued", NOW)


def test_a_handed_out_poll_delivery_is_offered_again_when_visible() -> None:
    polled = replace(PUSH, delivery_mode="poll", rate_limit_per_sec=5)
    assert waiting(task(polled, visible_in=timedelta(seconds=30)), NOW) == (
        "awaiting_poll", NOW + timedelta(seconds=30))
    assert waiting(task(polled, due_in=timedelta(seconds=60)), NOW) == ("delayed", NOW + timedelta(seconds=60))


endpoints = st.none() | st.builds(
    EndpointState, st.sampled_from(["active", "paused"]), st.sampled_from(["push", "poll", "storage"]),
    st.integers(0, 1000), st.sampled_from(["closed", "open", "half_open"]), st.integers(0, 10),
    st.none() | st.timedeltas(timedelta(days=-2), timedelta(days=2)).map(lambda d: NOW + d),
    st.integers(0, 86_400_000))
offsets = st.timedeltas(timedelta(days=-30), timedelta(days=30))


@given(endpoints, st.sampled_from(PENDING_STATUSES), st.integers(0, 25), offsets, st.none() | offsets)
def test_properties(ep: EndpointState | None, status: str, attempts: int, due_in: timedelta,
                    visible_in: timedelta | None) -> None:
    t = task(ep, status, attempts, due_in, visible_in)
    reason, at = waiting(t, NOW)
    assert reason in REASONS
    assert (reason == "in_flight") == (status == "delivering")
    assert (at is None) == (reason in ("in_flight", "endpoint_paused"))
    if at is not None:
        assert at >= t.next_attempt_at, "nothing is sent before its own due time"
    if reason in ("retry_scheduled", "delayed"):
        assert at is not None and at > NOW and (attempts > 0) == (reason == "retry_scheduled")
    if reason in ("awaiting_poll", "rate_limited", "queued"):
        assert t.next_attempt_at <= NOW, "only a due delivery waits for a consumer, a token or a shard"
    if reason in ("circuit_open", "rate_limited"):
        assert ep is not None and ep.delivery_mode == "push", "breakers and rate limits apply to pushes"
    if ep is None:
        assert reason not in ("endpoint_paused", "circuit_open", "rate_limited", "awaiting_poll")
