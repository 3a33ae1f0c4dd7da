"""The pure parts of sub-accounts and portal sessions: input rules, the bearer header, session states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import BadRequest
from control.services.portal import MAX_TOKEN, bearer
from control.services.sub_accounts import (
    DEFAULT_SESSION_S,
    MAX_METADATA_BYTES,
    parse_session,
    parse_sub_account,
    session_state,
)


def test_a_sub_account_needs_name_and_sub_id_on_create_only() -> None:
    got = parse_sub_account({"name": " Acme ", "subID": "cust_abc123", "metadata": {"tier": "x"}}, creating=True)
    assert (got.name, got.sub_id, got.metadata) == ("Acme", "cust_abc123", {"tier": "x"})
    assert parse_sub_account({"name": "n"}, creating=False).sub_id is None


@pytest.mark.parametrize(("body", "says"), [
    ({"name": "n"}, "subID: required"),
    ({"subID": "s"}, "name: required"),
    ({"name": "n", "subID": "a b"}, "subID: must not contain spaces"),
    ({"name": "n", "subID": "s", "metadata": []}, "metadata: expected a JSON object"),
    ({"name": "n", "subID": "s", "metadata": {"k": "x" * MAX_METADATA_BYTES}}, "metadata: larger than"),
    ({"name": "n", "subID": "s", "extra": 1}, "extra: unknown field"),
    ({"name": "", "subID": "s"}, "name: must not be empty"),
])
def test_bad_input_is_refused_naming_the_field(body: dict[str, Any], says: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_sub_account(body, creating=True)
    assert says in refused.value.message


def test_session_input_defaults_to_an_hour_and_bounds_the_window() -> None:
    assert parse_session(None).ttl_s == DEFAULT_SESSION_S
    assert parse_session({"returnURL": "https://app.example.com/x", "ttlSeconds": 600}).ttl_s == 600
    for body, says in (({"ttlSeconds": 10}, "ttlSeconds: must be at least"),
                       ({"ttlSeconds": 10**6}, "ttlSeconds: must be at most"),
                       ({"returnURL": "javascript:alert(1)"}, "returnURL"),
                       ({"other": 1}, "other: unknown field")):
        with pytest.raises(BadRequest) as refused:
            parse_session(body)
        assert says in refused.value.message


def test_bearer_takes_only_a_bearer_token() -> None:
    assert bearer("Bearer mtp_abc") == "mtp_abc"
    assert bearer("bearer   mtp_abc ") == "mtp_abc"
    for value in (None, "", "Basic abc", "Bearer", "Bearer ", "mtp_abc", "Bearer " + "x" * (MAX_TOKEN + 1)):
        assert bearer(value) is None, value


@given(st.text(max_size=300))
def test_bearer_never_returns_more_than_the_limit(value: str) -> None:
    got = bearer(value)
    assert got is None or (0 < len(got) <= MAX_TOKEN and got == got.strip())


def test_session_states() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later, earlier = now + timedelta(seconds=1), now - timedelta(seconds=1)
    base = {"revoked_at": None, "exchanged_at": None, "exchange_expires_at": later, "expires_at": None}
    assert session_state(base, now) == "pending"
    assert session_state({**base, "exchange_expires_at": earlier}, now) == "expired"
    assert session_state({**base, "exchanged_at": earlier, "expires_at": later}, now) == "active"
    assert session_state({**base, "exchanged_at": earlier, "expires_at": earlier}, now) == "expired"
    revoked = {**base, "revoked_at": earlier, "exchanged_at": earlier, "expires_at": later}
    assert session_state(revoked, now) == "revoked"
