"""What the outcome writer does about a failed write: retry, split, drop, or declare itself wedged."""

from __future__ import annotations

import asyncpg
import asyncpg.exceptions as pgerr
import pytest
from asyncpg.exceptions import _base as pgbase
from hypothesis import given
from hypothesis import strategies as st

from engine.policy.recording import BACKOFF_CAP_S, WedgeWatch, classify, halves, retry_delay_s, step


@pytest.mark.parametrize("exc", [
    pgerr.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pgerr.CannotConnectNowError("the database system is starting up"),
    pgerr.AdminShutdownError("terminating connection due to administrator command"),
    pgerr.InvalidCatalogNameError('database "x" does not exist'),
    pgerr.SerializationError("could not serialize access"),
    pgerr.DeadlockDetectedError("deadlock detected"),
    pgerr.QueryCanceledError("canceling statement due to statement timeout"),
    pgerr.TooManyConnectionsError("sorry, too many clients already"),
    pgerr.UndefinedTableError('relation "delivery_attempts" does not exist'),   # not the rows' fault
    asyncpg.InterfaceError("pool is closing"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError(111, "Connection refused"),
    TimeoutError(),
])
def test_connection_and_server_trouble_is_transient(exc: BaseException) -> None:
    assert classify(exc) == "transient"


@pytest.mark.parametrize("exc", [
    pgerr.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'),
    pgerr.NumericValueOutOfRangeError("integer out of range"),
    pgerr.InvalidTextRepresentationError("invalid input syntax for type uuid"),
    pgerr.DataError("invalid input for query argument $10"),
    pgerr.UniqueViolationError("duplicate key value violates unique constraint"),
    pgerr.NotNullViolationError("null value in column"),
    pgbase.DataError("invalid input for query argument $1"),     # asyncpg could not encode it
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),   # from a COPY
    OverflowError("value out of int32 range"),                                # from a COPY
])
def test_errors_about_the_rows_are_poison(exc: BaseException) -> None:
    assert classify(exc) == "poison"


@given(st.integers(min_value=1, max_value=10_000))
def test_transient_failures_retry_the_whole_batch(size: int) -> None:
    assert step("transient", size) == "retry"


def test_poison_splits_down_to_one_outcome_then_drops_it() -> None:
    assert step("poison", 500) == "split"
    assert step("poison", 2) == "split"
    assert step("poison", 1) == "drop"


@given(st.lists(st.integers(), min_size=2, max_size=600))
def test_halves_keep_every_outcome_in_order_and_shrink(items: list[int]) -> None:
    first, second = halves(items)
    assert first + second == items
    assert first and second and abs(len(first) - len(second)) <= 1


@given(st.integers(min_value=1, max_value=2_000), st.integers(min_value=0, max_value=1_999))
def test_halving_isolates_any_outcome_in_logarithmic_steps(size: int, bad: int) -> None:
    """Follow the half holding the poison outcome: it stands alone after ceil(log2(size)) splits."""
    bad %= size
    chunk = list(range(size))
    splits = 0
    while step("poison", len(chunk)) == "split":
        first, second = halves(chunk)
        chunk = first if bad in first else second
        splits += 1
    assert chunk == [bad]
    assert splits <= (size - 1).bit_length()


def test_backoff_grows_and_is_capped() -> None:
    delays = [retry_delay_s(n) for n in range(1, 200)]
    assert delays == sorted(delays)
    assert delays[0] > 0 and max(delays) == BACKOFF_CAP_S


def test_wedged_only_when_failing_both_long_and_often() -> None:
    w = WedgeWatch(after_s=15, min_failures=3)
    assert not w.failure(100.0)
    assert not w.failure(101.0)
    assert not w.failure(102.0), "three failures, but only for 2 s"
    assert not w.failure(114.9)
    assert w.failure(115.0), "15 s of failures in a row"
    assert w.wedged
    assert not w.failure(116.0) and not w.failure(200.0), "reported once per streak"
    w.success()
    assert not w.wedged and w.streak == 0
    assert not w.failure(300.0), "a success starts the clock again"
    slow = WedgeWatch(after_s=15, min_failures=3)
    assert not slow.failure(0.0) and not slow.failure(60.0), "one slow timeout is not a wedge"
    assert slow.failure(61.0)


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=5), st.booleans()), max_size=60),
       st.floats(min_value=0, max_value=30), st.integers(min_value=1, max_value=8))
def test_wedge_reports_once_exactly_when_both_thresholds_are_first_met(
        events: list[tuple[float, bool]], after_s: float, min_failures: int) -> None:
    w = WedgeWatch(after_s=after_s, min_failures=min_failures)
    now = 0.0
    streak: list[float] = []
    reported = False
    for gap, ok in events:
        now += gap
        if ok:
            w.success()
            streak, reported = [], False
            continue
        streak.append(now)
        due = len(streak) >= min_failures and now - streak[0] >= after_s
        assert w.failure(now) == (due and not reported)
        reported = reported or due
        assert w.wedged == reported and w.streak == len(streak)
