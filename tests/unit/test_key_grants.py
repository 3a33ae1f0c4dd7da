"""A key never grants more than its maker holds; the body of POST /api/v1/api-keys, field by field."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.errors import ApiError, NotFound
from control.policy.access import ALL_SCOPES, scopes_allow
from control.policy.key_grants import PERMISSIONS, opens, ungrantable
from control.services.api_keys import MAX_RATE_LIMIT, parse_key_request

NOW = datetime(2026, 5, 1, tzinfo=UTC)
scope_sets = st.frozensets(st.sampled_from(ALL_SCOPES), max_size=6)


def grantor(scopes: frozenset[str]) -> tuple[Callable[[str], bool], bool]:
    return (lambda p: scopes_allow(scopes, p)), (not scopes or "*" in scopes)


@given(scope_sets, scope_sets)
def test_a_grant_never_opens_a_permission_the_grantor_lacks(have: frozenset[str], want: frozenset[str]) -> None:
    allows, full = grantor(have)
    if ungrantable(want, allows, full) is None:
        for p in PERMISSIONS:
            assert not scopes_allow(want, p) or scopes_allow(have, p), (have, want, p)
        assert "*" not in want or full


@given(scope_sets)
def test_a_key_may_grant_its_own_scopes(have: frozenset[str]) -> None:
    allows, full = grantor(have)
    assert ungrantable(have, allows, full) is None


def test_escalation_is_named() -> None:
    allows, full = grantor(frozenset({"api-keys:write"}))
    assert ungrantable(["*"], allows, full) == ("*", "*")
    assert ungrantable([], allows, full) == ("*", "*"), "an empty list is full access"
    assert ungrantable(["api-keys:read", "events:write"], allows, full) == ("events:write",
                                                                            "events:read")
    allows, full = grantor(frozenset({"events:write"}))
    assert ungrantable(["events:read", "events:*"], allows, full) is None
    assert opens("events:read") == {"events:read"}
    assert opens("*") == set(PERMISSIONS)


def test_a_minimal_body_is_a_full_access_key() -> None:
    req = parse_key_request({"name": " ci "}, NOW)
    assert (req.name, req.scopes, req.rate_limit, req.expires_at, req.project_id) == ("ci", ("*",), None, None, None)


def test_a_full_body() -> None:
    project = uuid.uuid4()
    req = parse_key_request({"name": "n", "scopes": ["events:write", "endpoints:read", "events:write"],
                             "rateLimit": 0, "expiresAt": "2027-01-01T00:00:00Z", "projectId": str(project)}, NOW)
    assert req.scopes == ("events:write", "endpoints:read") and req.rate_limit == 0
    assert req.expires_at == datetime(2027, 1, 1, tzinfo=UTC) and req.project_id == project


@pytest.mark.parametrize(("body", "message"), [
    ({}, "name: required"),
    ({"name": "  "}, "name: must not be empty"),
    ({"name": "x" * 201}, "name: longer than 200"),
    ({"name": "n", "scope": ["*"]}, "scope: unknown field"),
    ({"name": "n", "scopes": []}, "scopes: must not be empty"),
    ({"name": "n", "scopes": "events:read"}, "scopes: expected an array"),
    ({"name": "n", "scopes": ["events:read", "events:delete"]}, "scopes[1]: unknown scope 'events:delete'"),
    ({"name": "n", "scopes": ["nothing:read"]}, "scopes[0]: unknown scope 'nothing:read'"),
    ({"name": "n", "rateLimit": -1}, "rateLimit: must be at least 0"),
    ({"name": "n", "rateLimit": MAX_RATE_LIMIT + 1}, f"rateLimit: must be at most {MAX_RATE_LIMIT}"),
    ({"name": "n", "rateLimit": True}, "rateLimit: expected an integer"),
    ({"name": "n", "expiresAt": "2026-04-30T00:00:00Z"}, "expiresAt: 2026-04-30T00:00:00Z is not in the future"),
    ({"name": "n", "expiresAt": NOW.isoformat()}, "not in the future"),
    ({"name": "n", "expiresAt": "2027-01-01"}, "expiresAt: expected an RFC 3339"),
    ({"name": "n", "expiresAt": "0001-01-01T00:00:00+01:00"}, "expiresAt: expected an RFC 3339"),
])
def test_refusals_name_the_field(body: dict[str, object], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_key_request(body, NOW)
    assert caught.value.status == 400 and message in caught.value.message, caught.value.message


def test_a_malformed_project_id_is_not_found() -> None:
    with pytest.raises(NotFound):
        parse_key_request({"name": "n", "projectId": "nope"}, NOW)


def test_expiry_just_ahead_is_accepted() -> None:
    assert parse_key_request({"name": "n", "expiresAt": (NOW + timedelta(seconds=1)).isoformat()}, NOW).expires_at
