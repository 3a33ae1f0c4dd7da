"""The pure parts of the account flows: bodies, the workspace a login lands in, throttle verdicts,
the session cookie, links and the session's shape."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.cookies import cleared_cookie, session_cookie, wants_secure
from control.errors import ApiError, BadRequest, Forbidden, NotFound, ValidationError
from control.policy.login_throttle import ThrottleLimits, limit_of, retry_after, throttle_keys
from control.services.accounts import (
    choose_membership,
    link,
    parse_login,
    parse_reset,
    parse_signup,
    parse_token,
    reset_mail,
    session_json,
    verify_mail,
)

LIMITS = ThrottleLimits(per_email=3, per_ip=10, window_s=900)


def field_of(exc: pytest.ExceptionInfo[ApiError]) -> str:
    return exc.value.message.split(":", 1)[0]


def test_signup_body() -> None:
    s = parse_signup({"email": " Ada@Example.COM ", "password": "secure123", "companyName": " Acme "})
    assert (s.email, s.password, s.company) == ("ada@example.com", "secure123", "Acme")
    assert parse_signup({"email": "a@b.example", "password": "long enough pw"}).company == "a@b.example"
    for body, field in [({"email": "nope", "password": "secure123"}, "email"),
                        ({"password": "secure123"}, "email"),
                        ({"email": "a@b.example", "password": "short"}, "password"),
                        ({"email": "a@b.example", "password": "password1"}, "password"),
                        ({"email": "alice@b.example", "password": "alice@b.example"}, "password"),
                        ({"email": "a@b.example"}, "password"),
                        ({"email": "a@b.example", "password": "secure123", "companyName": "  "}, "companyName"),
                        ({"email": "a@b.example", "password": "secure123", "companyName": "a\x00b"}, "companyName"),
                        ({"email": "a@b.example", "password": "secure123", "companyName": "x" * 201}, "companyName")]:
        with pytest.raises(ValidationError) as exc:
            parse_signup(body)
        assert field_of(exc) == field, body
    with pytest.raises(BadRequest):
        parse_signup(["not", "an", "object"])


def test_login_body() -> None:
    ws = uuid.uuid4()
    login = parse_login({"email": "A@B.example", "password": "x", "workspaceId": str(ws)})
    assert (login.email, login.password, login.workspace_id) == ("a@b.example", "x", ws)
    assert parse_login({"email": "a@b.example", "password": "x"}).workspace_id is None
    for body, field in [({"email": "a@b.example"}, "password"), ({"email": "a@b.example", "password": ""}, "password"),
                        ({"email": "a@b.example", "password": "x" * 1025}, "password"),
                        ({"email": "a\x00@b.example", "password": "x"}, "email"),
                        ({"email": "a@b.example", "password": "x", "workspaceId": "abc"}, "workspaceId"),
                        ({"email": "a@b.example", "password": "x", "workspaceId": 5}, "workspaceId")]:
        with pytest.raises(ValidationError) as exc:
            parse_login(body)
        assert field_of(exc) == field, body


def test_token_bodies() -> None:
    assert parse_token({"token": "abc"}) == "abc"
    with pytest.raises(ValidationError):
        parse_token({})
    with pytest.raises(BadRequest) as exc:
        parse_token({"token": "x" * 201})
    assert exc.value.message == "invalid or expired token"
    assert parse_reset({"token": "t", "newPassword": "p"}) == ("t", "p")
    with pytest.raises(ValidationError) as missing:
        parse_reset({"token": "t"})
    assert field_of(missing) == "newPassword"


def test_choose_membership() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    rows = [{"client_id": a, "role": "admin"}, {"client_id": b, "role": "viewer"}]
    assert choose_membership(rows, None)["client_id"] == a, "the oldest by default"
    assert choose_membership(rows, b)["role"] == "viewer"
    with pytest.raises(NotFound):
        choose_membership(rows, uuid.uuid4())
    with pytest.raises(Forbidden):
        choose_membership([], None)


def test_throttle_keys_and_limits() -> None:
    assert throttle_keys("a@b.example", "10.0.0.1", LIMITS) == ["email:a@b.example", "ip:10.0.0.1"]
    assert throttle_keys("a@b.example", None, LIMITS) == ["email:a@b.example"]
    assert throttle_keys("a@b.example", "10.0.0.1", ThrottleLimits(0, 0, 60)) == []
    assert limit_of("ip:1.2.3.4", LIMITS) == 10 and limit_of("email:x", LIMITS) == 3
    assert limit_of("reset:x", LIMITS) == 3, "reset mails count per address"


def test_retry_after_examples() -> None:
    assert retry_after([("email:a", 3, 100.0), ("ip:x", 10, 5.0)], LIMITS) is None, "at the limit: allowed"
    assert retry_after([("email:a", 4, 100.2), ("ip:x", 1, 5.0)], LIMITS) == 101
    assert retry_after([("email:a", 4, 100.0), ("ip:x", 11, 400.0)], LIMITS) == 400
    assert retry_after([("email:a", 4, 0.0)], LIMITS) == 1, "never 0"
    assert retry_after([("email:a", 99, 50.0)], ThrottleLimits(0, 10, 60)) is None, "0 turns it off"


@given(st.lists(st.tuples(st.sampled_from(["email:a", "ip:b", "reset:c"]), st.integers(1, 100),
                          st.floats(0, 900, allow_nan=False)), max_size=3),
       st.integers(0, 20), st.integers(0, 20))
def test_retry_after_is_refusal_exactly_when_a_counter_is_past_its_limit(
        counts: list[tuple[str, int, float]], per_email: int, per_ip: int) -> None:
    limits = ThrottleLimits(per_email, per_ip, 900)
    wait = retry_after(counts, limits)
    past = [c for c in counts if 0 < limit_of(c[0], limits) < c[1]]
    assert (wait is not None) == bool(past)
    if wait is not None:
        assert 1 <= wait <= 901


def test_cookie() -> None:
    cookie = session_cookie("mts_abc", 3600, secure=False)
    assert cookie == "mittr_session=mts_abc; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"
    assert session_cookie("t", 10, secure=True).endswith("; Secure")
    assert cleared_cookie(True).startswith("mittr_session=; Max-Age=0;") and "Secure" in cleared_cookie(True)
    assert wants_secure("https", "") and wants_secure("http", "HTTPS://mittr.example.com")
    assert not wants_secure("http", "") and not wants_secure("http", "http://mittr.example.com")


def test_links_and_mails() -> None:
    assert link("https://m.example/app/", "/verify-email", "tok") == "https://m.example/app/verify-email?token=tok"
    subject, text = verify_mail("https://m.example/verify-email?token=tok", 48 * 3600)
    assert "token=tok" in text and "48 hours" in text and subject
    assert "1 hour." in reset_mail("u", 3600)[1]


def test_session_shape() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    base = {"id": uuid.uuid4(), "created_at": now, "expires_at": now, "client_id": uuid.uuid4(),
            "workspace_name": "Acme", "user_id": None, "email": None, "name": None, "email_verified_at": None,
            "role": None, "key_id": uuid.uuid4(), "key_name": "ci", "key_prefix": "mtr_abcd", "scopes": [],
            "key_project_id": None}
    keyed = session_json(base)
    assert keyed["user"] is None and keyed["role"] is None and keyed["scopes"] == ["*"], "no scopes: every scope"
    assert keyed["apiKey"]["keyPrefix"] == "mtr_abcd" and keyed["expiresAt"] == "2025-01-02T03:04:05Z"
    person = session_json({**base, "key_id": None, "user_id": uuid.uuid4(), "email": "a@b.example", "name": "",
                           "role": "editor"})
    assert person["apiKey"] is None and person["scopes"] is None and person["role"] == "editor"
    assert person["user"]["emailVerified"] is False
