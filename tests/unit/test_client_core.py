"""The client's pure parts: retry timing, what an answer means, and the receiver's verification,
cross-checked against the server's own signing code and the standardwebhooks library."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from control.policy.signing import generate_secret, sign_v1, standard_webhook_headers
from mittr_client import calls
from mittr_client.errors import BadRequest, Conflict, NotFound, RateLimited
from mittr_client.receiver import VerificationError, verify, verify_mittr, verify_standard
from mittr_client.retry import RetryPolicy, parse_retry_after
from mittr_client.transport import Done, Fail, Recover, Retry, judge_answer

POLICY = RetryPolicy(attempts=4, base=0.5, cap=8.0, max_retry_after=60)


@given(st.integers(1, 3), st.integers(0, 2**32))
def test_backoff_is_jittered_between_half_and_all_of_the_capped_exponential(attempt: int, seed: int) -> None:
    ceiling = min(0.5 * 2 ** (attempt - 1), 8.0)
    delay = POLICY.delay(attempt, None, random.Random(seed))
    assert delay is not None and ceiling / 2 <= delay <= ceiling


def test_retries_stop_when_the_attempts_are_spent_or_the_server_asks_too_much() -> None:
    assert POLICY.delay(4, None) is None
    assert POLICY.delay(1, 5.0) == 5.0
    assert POLICY.delay(1, 61.0) is None


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("7", now=0) == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:30 GMT", now=10) == 20.0
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_429_and_503_are_retried_after_retry_after_then_raised_with_their_code() -> None:
    call = calls.get_event("e1")
    assert judge_answer(call, 1, 429, '{"error": "slow", "code": "RATE_LIMITED"}', "3", POLICY) == Retry(3.0)
    assert judge_answer(call, 2, 503, "", "1", POLICY) == Retry(1.0)
    last = judge_answer(call, 4, 429, '{"error": "slow", "code": "RATE_LIMITED"}', "3", POLICY)
    assert isinstance(last, Fail) and isinstance(last.error, RateLimited)
    assert last.error.code == "RATE_LIMITED" and last.error.retry_after == 3.0


def test_errors_carry_the_servers_code_and_status() -> None:
    call = calls.get_event("e1")
    for status, code, cls in ((404, "NOT_FOUND", NotFound), (400, "VALIDATION_ERROR", BadRequest)):
        verdict = judge_answer(call, 1, status, json.dumps({"error": "x", "code": code}), None, POLICY)
        assert isinstance(verdict, Fail) and isinstance(verdict.error, cls)
        assert (verdict.error.code, verdict.error.status) == (code, status)


def test_a_duplicate_on_a_retried_create_reads_the_stored_event_but_a_first_try_raises() -> None:
    create = calls.create_event({"a": 1}, event_type="order.created")
    body = json.dumps({"error": "exists", "code": "CONFLICT", "eventId": "ev-1"})
    assert judge_answer(create, 2, 409, body, None, POLICY) == Recover("ev-1")
    first = judge_answer(create, 1, 409, body, None, POLICY)
    assert isinstance(first, Fail) and isinstance(first.error, Conflict)
    other = judge_answer(calls.create_endpoint("https://x.example"), 2, 409, body, None, POLICY)
    assert isinstance(other, Fail)


def test_event_creation_gets_a_fresh_idempotency_key_unless_one_is_given() -> None:
    a, b = calls.create_event({}, event_type="t"), calls.create_event({}, event_type="t")
    assert a.headers["X-Idempotency-Key"] != b.headers["X-Idempotency-Key"]
    assert calls.create_event({}, event_type="t", idempotency_key="k1").headers == {"X-Idempotency-Key": "k1"}
    assert isinstance(judge_answer(a, 1, 201, '{"id": "e"}', None, POLICY), Done)


# --- receiver ----------------------------------------------------------------------------------

BODY = b'{"orderId": "ord_1", "amount": 9900}'
NOW = 1_700_000_000


def mittr_headers(secret: str, body: bytes = BODY, ts: int = NOW) -> dict[str, str]:
    """What engine/sender.py sends."""
    return {"X-Mittr-Signature": sign_v1(secret.encode(), body), "X-Mittr-Timestamp": str(ts)}


@pytest.mark.parametrize("secret", ["plain-secret", generate_secret()])
def test_mittr_scheme_accepts_the_servers_signature(secret: str) -> None:
    assert verify(secret, BODY, mittr_headers(secret), now=NOW + 10) == {"orderId": "ord_1", "amount": 9900}
    rotated = {**mittr_headers(secret), "X-Mittr-Signature": "v1=" + "0" * 64 + " " + sign_v1(secret.encode(), BODY)}
    assert verify_mittr(secret, BODY, rotated, now=NOW)


@pytest.mark.parametrize(("body", "headers", "now"), [
    (BODY + b" ", mittr_headers("s"), NOW),                                  # body altered
    (BODY, mittr_headers("other"), NOW),                                      # wrong secret
    (BODY, mittr_headers("s"), NOW + 301),                                    # too old
    (BODY, mittr_headers("s"), NOW - 301),                                    # from the future
    (BODY, {"X-Mittr-Timestamp": str(NOW)}, NOW),                             # unsigned
    (BODY, {**mittr_headers("s"), "X-Mittr-Timestamp": "yesterday"}, NOW),   # malformed time
])
def test_mittr_scheme_rejects(body: bytes, headers: dict[str, str], now: int) -> None:
    with pytest.raises(VerificationError):
        verify("s", body, headers, now=now)


def test_standard_webhooks_accepts_the_servers_headers_and_agrees_with_the_reference_library() -> None:
    secret = generate_secret()
    headers = standard_webhook_headers("msg_abc", NOW, BODY, secret)
    assert verify(secret, BODY, headers, now=NOW) == {"orderId": "ord_1", "amount": 9900}
    # The reference library signs; we verify (and we refuse what it would refuse).
    signed = Webhook(secret).sign("msg_x", __import__("datetime").datetime.fromtimestamp(NOW), BODY.decode())
    ref = {"webhook-id": "msg_x", "webhook-timestamp": str(NOW), "webhook-signature": signed}
    assert verify_standard(secret, BODY, ref, now=NOW)
    for bad in ({**ref, "webhook-id": "msg_y"}, {**ref, "webhook-timestamp": str(NOW + 1)}):
        with pytest.raises(VerificationError):
            verify_standard(secret, BODY, bad, now=NOW)
    with pytest.raises(VerificationError):
        verify_standard(secret, BODY, ref, now=NOW + 301)


@given(st.binary(max_size=200), st.text(min_size=1, max_size=40))
def test_any_body_signed_by_the_server_verifies_and_any_other_body_does_not(body: bytes, secret: str) -> None:
    headers = mittr_headers(secret, body)
    verify_mittr(secret, body, headers, now=NOW)  # does not raise
    with pytest.raises(VerificationError):
        verify_mittr(secret, body + b"x", headers, now=NOW)
