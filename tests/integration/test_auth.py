"""The public /auth/* flows in-process against a real database and a real SMTP server: sign-up,
log-in with the cookie's attributes, one 401 for unknown e-mail and wrong password, throttling per
e-mail and per client address shared by workers, e-mail verification, forgot/reset password with
single-use expiring links, sessions made from API keys acting with the key's scopes, logout, and the
Origin rule for cookie writes. Plus `mittr users create` and `mittr keys create` as commands."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from blacksheep import Application, Content, Request
from blacksheep.testing.helpers import get_example_scope

from api.context import ctx
from control.services.accounts import AccountService
from control.services.keys import create_client, create_key
from control.services.sessions import SessionAuthenticator
from control.settings import load_settings
from tests.support.smtp import SmtpServer, body_of, token_in

ORIGIN = "http://127.0.0.1:8000"        # the in-process requests' own origin (their Host header)
PASSWORD = "correct horse battery"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Reply:
    status: int
    body: Any
    raw: bytes
    cookie: str | None          # the Set-Cookie header, if any

    @property
    def token(self) -> str:
        assert self.cookie is not None
        return self.cookie.split(";", 1)[0].split("=", 1)[1]

    def attributes(self) -> dict[str, str]:
        assert self.cookie is not None
        out = {}
        for part in self.cookie.split(";")[1:]:
            name, _, value = part.strip().partition("=")
            out[name.lower()] = value
        return out


@dataclass
class Web:
    """The real app in-process, driven like a browser or a script from any client address."""

    app: Application
    pool: Any
    smtp: SmtpServer

    async def call(self, method: str, path: str, body: Any = None, *, session: str | None = None,
                   origin: str | None = ORIGIN, key: str | None = None, ip: str = "127.0.0.1",
                   scheme: str = "http", headers: dict[str, str] | None = None) -> Reply:
        headers = dict(headers or {})
        if origin is not None and method != "GET":
            headers["Origin"] = origin
        if key is not None:
            headers["X-API-Key"] = key
        cookies = {"mittr_session": session} if session is not None else None
        scope = get_example_scope(method, path, headers, scheme=scheme, client=(ip, 40000), cookies=cookies)
        request = Request.incoming(scope["method"], scope["raw_path"], scope["query_string"], scope["headers"])
        request.scope = scope  # type: ignore[assignment]
        if body is not None:
            request.content = Content(b"application/json", orjson.dumps(body))
        response = await self.app.handle(request)
        raw = await response.read() or b""
        cookie = response.get_first_header(b"set-cookie")
        return Reply(response.status, orjson.loads(raw) if raw else None, raw,
                     cookie.decode() if cookie is not None else None)

    async def signup(self, email: str, company: str = "Acme", password: str = PASSWORD) -> Reply:
        reply = await self.call("POST", "/auth/signup", {"email": email, "password": password, "companyName": company})
        assert reply.status == 201, reply.body
        return reply

    async def login(self, email: str, password: str = PASSWORD, **kw: Any) -> Reply:
        return await self.call("POST", "/auth/login", {"email": email, "password": password}, **kw)

    async def settle(self) -> None:
        """Wait for the mail this worker sends in the background."""
        await ctx().service(AccountService).aclose()


MakeWeb = Callable[..., Awaitable[Web]]


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def make_web(db_url: str, pool: Any, smtp: SmtpServer) -> AsyncIterator[MakeWeb]:
    """Start an API worker (several may share the database: they are then separate workers)."""
    from api.app import create_app

    apps: list[Application] = []

    async def make(**auth: str) -> Web:
        env = {"DATABASE_URL": db_url, **smtp.env(),
               "MITTR_SECURITY__ENCRYPTION_KEY": os.environ["MITTR_SECURITY__ENCRYPTION_KEY"],
               **{f"MITTR_AUTH__{k.upper()}": v for k, v in auth.items()}}
        app = create_app(load_settings(env=env))
        await app.start()
        apps.append(app)
        return Web(app, pool, smtp)

    try:
        yield make
    finally:
        for app in reversed(apps):
            await app.stop()


@pytest.fixture
async def web(make_web: MakeWeb) -> Web:
    return await make_web(login_failures_per_email="3", login_failures_per_ip="50")


async def audit_actions(pool: Any, client_id: str) -> list[tuple[str, str, str]]:
    rows = await pool.fetch("SELECT action, resource, actor_type FROM audit_logs WHERE client_id = $1 "
                            "ORDER BY created_at, id", uuid.UUID(client_id))
    return [(r["action"], r["resource"], r["actor_type"]) for r in rows]


# ---- sign-up, the cookie, verification --------------------------------------------------------------

async def test_signup_makes_a_workspace_its_admin_a_session_and_a_verification_mail(web: Web) -> None:
    reply = await web.signup("Ada@Acme.example", company="Acme Corp")
    assert reply.body["user"]["email"] == "ada@acme.example"
    assert reply.body["user"]["emailVerified"] is False
    assert reply.body["role"] == "admin" and reply.body["workspace"]["name"] == "Acme Corp"
    workspace = reply.body["workspace"]["id"]
    assert await web.pool.fetchval("SELECT name FROM clients WHERE id = $1", uuid.UUID(workspace)) == "Acme Corp"
    assert await web.pool.fetchval("SELECT role FROM memberships WHERE client_id = $1", uuid.UUID(workspace)) == "admin"
    attrs = reply.attributes()
    assert {"httponly", "path", "samesite", "max-age"} <= set(attrs) and "secure" not in attrs
    assert attrs["path"] == "/" and attrs["samesite"] == "Lax" and attrs["max-age"] == str(168 * 3600)

    # Signed in at once, unverified: the cookie reads the API and shows who it is.
    me = await web.call("GET", "/auth/session", session=reply.token)
    assert me.status == 200, me.body
    assert me.body["user"]["email"] == "ada@acme.example" and me.body["role"] == "admin"
    assert me.body["user"]["id"] == reply.body["user"]["id"] != me.body["id"], "the person's id, not the session's"
    assert me.body["workspace"] == {"id": workspace, "name": "Acme Corp"} and me.body["apiKey"] is None
    assert (await web.call("GET", "/api/v1/event-types", session=reply.token)).status == 200

    mail = (await web.smtp.inbox.wait_for("ada@acme.example"))[0]
    assert "/verify-email?token=" in body_of(mail) and body_of(mail).startswith("Confirm")
    hours = await web.pool.fetchval("SELECT extract(epoch FROM expires_at - created_at) / 3600 FROM auth_tokens "
                                    "WHERE kind = 'verify_email'")
    assert round(hours) == 48
    token = token_in(mail)
    verified = await web.call("POST", "/auth/verify-email", {"token": token})
    assert verified.status == 200 and verified.body["user"]["emailVerified"] is True
    again = await web.call("POST", "/auth/verify-email", {"token": token})
    assert again.status == 400 and again.body == {"error": "invalid or expired token", "code": "BAD_REQUEST"}
    assert (await web.login("ada@acme.example")).body["user"]["emailVerified"] is True
    assert await audit_actions(web.pool, workspace) == [
        ("create", "workspace", "user"), ("verify_email", "user", "user"), ("login", "session", "user")]


async def test_signup_refuses_taken_addresses_weak_passwords_and_bad_addresses(web: Web) -> None:
    await web.signup("ben@acme.example")
    taken = await web.call("POST", "/auth/signup", {"email": "BEN@acme.example", "password": PASSWORD,
                                                   "companyName": "Other"})
    assert taken.status == 409 and taken.body["code"] == "CONFLICT"
    weak = await web.call("POST", "/auth/signup", {"email": "new@acme.example", "password": "password123"})
    assert weak.status == 400 and weak.body["error"].startswith("password:")
    short = await web.call("POST", "/auth/signup", {"email": "new@acme.example", "password": "abc"})
    assert short.status == 400 and short.body["error"].startswith("password:")
    bad = await web.call("POST", "/auth/signup", {"email": "not-an-address", "password": PASSWORD})
    assert bad.status == 400 and bad.body["error"].startswith("email:")
    assert await web.pool.fetchval("SELECT count(*) FROM users") == 1
    assert await web.pool.fetchval("SELECT count(*) FROM clients WHERE name = 'Other'") == 0, "rolled back"
    assert taken.cookie is None and weak.cookie is None


async def test_unverified_mail_link_expires(web: Web) -> None:
    await web.signup("late@acme.example")
    token = token_in((await web.smtp.inbox.wait_for("late@acme.example"))[0])
    await web.pool.execute("UPDATE auth_tokens SET expires_at = now() - interval '1 second'")
    expired = await web.call("POST", "/auth/verify-email", {"token": token})
    assert expired.status == 400 and expired.body["error"] == "invalid or expired token"
    assert (await web.call("POST", "/auth/verify-email", {"token": "mtv_nonsense"})).status == 400


# ---- log-in -----------------------------------------------------------------------------------------

async def test_login_sets_the_cookie_secure_over_https(web: Web) -> None:
    await web.signup("carol@acme.example")
    plain = await web.login("carol@acme.example")
    assert plain.status == 200 and plain.body["role"] == "admin"
    assert "secure" not in plain.attributes() and plain.attributes()["samesite"] == "Lax"
    tls = await web.login("carol@acme.example", scheme="https", origin="https://127.0.0.1:8000")
    assert tls.status == 200 and "secure" in tls.attributes() and "httponly" in tls.attributes()
    assert plain.token != tls.token


async def test_unknown_address_and_wrong_password_get_the_same_answer_in_about_the_same_time(
        make_web: MakeWeb) -> None:
    web = await make_web(login_failures_per_email="0", login_failures_per_ip="0")
    await web.signup("dora@acme.example")

    async def timed(email: str, password: str) -> tuple[float, Reply]:
        started = time.perf_counter()
        reply = await web.login(email, password)
        return time.perf_counter() - started, reply

    unknown = [await timed(f"nobody{i}@acme.example", PASSWORD) for i in range(7)]
    wrong = [await timed("dora@acme.example", "not the password") for _ in range(7)]
    for _, reply in unknown + wrong:
        assert reply.status == 401 and reply.raw == unknown[0][1].raw and reply.cookie is None
    assert unknown[0][1].body == {"error": "invalid e-mail address or password", "code": "UNAUTHORIZED"}
    # Both check a password hash (argon2id, tens of ms); a skipped check would be many times faster.
    fast, slow = sorted([statistics.median(t for t, _ in unknown), statistics.median(t for t, _ in wrong)])
    assert slow < fast * 4, (fast, slow)


async def test_failed_logins_per_address_are_throttled_across_workers_and_success_resets(
        make_web: MakeWeb) -> None:
    one = await make_web(login_failures_per_email="3", login_failures_per_ip="1000")
    two = await make_web(login_failures_per_email="3", login_failures_per_ip="1000")
    await one.signup("eve@acme.example")

    # Two failures, then the right password: the address's counter starts again.
    assert [(await w.login("eve@acme.example", "wrong password!")).status for w in (one, two)] == [401, 401]
    assert (await two.login("eve@acme.example")).status == 200
    # Three failures spread over both workers use the allowance; the fourth try is refused even with
    # the right password, and on either worker.
    assert [(await w.login("eve@acme.example", "wrong password!")).status for w in (one, two, one)] == [401] * 3
    refused = await two.login("eve@acme.example")
    assert refused.status == 429 and refused.body["code"] == "RATE_LIMITED" and refused.cookie is None
    assert (await one.login("eve@acme.example")).status == 429
    # Another address is not affected; after the window the address may try again.
    await one.signup("fred@acme.example")
    assert (await one.login("fred@acme.example")).status == 200
    await one.pool.execute("UPDATE login_throttle SET window_start = now() - interval '901 seconds'")
    assert (await two.login("eve@acme.example")).status == 200


async def test_throttle_answer_carries_retry_after(make_web: MakeWeb) -> None:
    web = await make_web(login_failures_per_email="1", login_failures_per_ip="1000", login_window_s="600")
    await web.login("gone@acme.example", "whatever pass")
    scope = get_example_scope("POST", "/auth/login", {"Origin": ORIGIN})
    request = Request.incoming(scope["method"], scope["raw_path"], scope["query_string"], scope["headers"])
    request.scope = scope  # type: ignore[assignment]
    request.content = Content(b"application/json", orjson.dumps({"email": "gone@acme.example", "password": "x" * 9}))
    response = await web.app.handle(request)
    assert response.status == 429
    retry_after = int(response.get_first_header(b"retry-after") or b"0")
    assert 500 <= retry_after <= 600


async def test_failed_logins_per_client_address_are_throttled(make_web: MakeWeb) -> None:
    web = await make_web(login_failures_per_email="100", login_failures_per_ip="4")
    await web.signup("gina@acme.example")
    for i in range(4):
        assert (await web.login(f"guess{i}@acme.example", ip="10.0.0.1")).status == 401
    blocked = await web.login("gina@acme.example", ip="10.0.0.1")
    assert blocked.status == 429 and blocked.body["code"] == "RATE_LIMITED"
    assert (await web.login("gina@acme.example", ip="10.0.0.2")).status == 200, "another client address"


async def test_login_lands_in_the_oldest_workspace_or_the_one_asked_for(web: Web) -> None:
    first = (await web.signup("hal@acme.example", company="First")).body["workspace"]["id"]
    other = await create_client(web.pool, "Second")
    await web.pool.execute("INSERT INTO memberships (client_id, user_id, role) "
                           "SELECT $1, id, 'viewer' FROM users WHERE email = 'hal@acme.example'", other["id"])
    assert (await web.login("hal@acme.example")).body["workspace"]["id"] == first
    chosen = await web.call("POST", "/auth/login", {"email": "hal@acme.example", "password": PASSWORD,
                                                   "workspaceId": str(other["id"])})
    assert chosen.status == 200 and chosen.body["role"] == "viewer" and chosen.body["workspace"]["name"] == "Second"
    viewer = chosen.token
    assert (await web.call("POST", "/api/v1/event-types", {"name": "x.y"}, session=viewer)).status == 403
    stranger = await create_client(web.pool, "Third")
    elsewhere = await web.call("POST", "/auth/login", {"email": "hal@acme.example", "password": PASSWORD,
                                                      "workspaceId": str(stranger["id"])})
    assert elsewhere.status == 404


# ---- forgot and reset -------------------------------------------------------------------------------

async def test_forgot_password_answers_alike_and_mails_only_real_accounts(web: Web) -> None:
    await web.signup("ivy@acme.example")
    await web.smtp.inbox.wait_for("ivy@acme.example")
    unknown = await web.call("POST", "/auth/forgot-password", {"email": "nobody@acme.example"})
    known = await web.call("POST", "/auth/forgot-password", {"email": "IVY@acme.example"})
    assert unknown.status == known.status == 200 and unknown.raw == known.raw
    await web.settle()
    assert web.smtp.inbox.to("nobody@acme.example") == []
    mails = await web.smtp.inbox.wait_for("ivy@acme.example", count=2)
    assert "/reset-password?token=" in body_of(mails[1])
    hours = await web.pool.fetchval("SELECT extract(epoch FROM expires_at - created_at) / 3600 FROM auth_tokens "
                                    "WHERE kind = 'reset_password'")
    assert round(hours) == 1
    bad = await web.call("POST", "/auth/forgot-password", {"email": "not an address"})
    assert bad.status == 400 and bad.body["error"].startswith("email:")


async def test_sign_ups_are_throttled_per_client_address(make_web: MakeWeb) -> None:
    web = await make_web(login_failures_per_ip="2")
    for i in range(2):
        assert (await web.call("POST", "/auth/signup", {"email": f"s{i}@acme.example", "password": PASSWORD},
                               ip="198.51.100.9")).status == 201
    refused = await web.call("POST", "/auth/signup", {"email": "s2@acme.example", "password": PASSWORD},
                             ip="198.51.100.9")
    assert refused.status == 429 and "sign-ups" in refused.body["error"]
    elsewhere = await web.call("POST", "/auth/signup", {"email": "s3@acme.example", "password": PASSWORD},
                               ip="198.51.100.10")
    assert elsewhere.status == 201, "another address is not held back"
    assert await web.pool.fetchval("SELECT count(*) FROM users") == 3


async def test_sign_up_can_be_turned_off(make_web: MakeWeb) -> None:
    closed = await make_web(allow_signup="false")
    reply = await closed.call("POST", "/auth/signup", {"email": "zed@acme.example", "password": PASSWORD})
    assert reply.status == 403 and reply.body["code"] == "FORBIDDEN" and "invitation" in reply.body["error"]
    assert await closed.pool.fetchval("SELECT count(*) FROM users") == 0


async def test_a_reset_link_never_points_at_the_host_the_asker_named(web: Web) -> None:
    """Password-reset poisoning: whoever asks for the victim's reset mail controls the Host header;
    the link (and its token) must still point at this server."""
    await web.signup("uma@acme.example")
    await web.smtp.inbox.wait_for("uma@acme.example")
    reply = await web.call("POST", "/auth/forgot-password", {"email": "uma@acme.example"}, origin=None,
                           headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    assert reply.status == 200
    await web.settle()
    mail = body_of((await web.smtp.inbox.wait_for("uma@acme.example", count=2))[1])
    assert "evil.example" not in mail and "http://127.0.0.1:8400/reset-password?token=" in mail, mail


async def test_reset_password_is_single_use_and_signs_out_everywhere(make_web: MakeWeb) -> None:
    web = await make_web()
    other_worker = await make_web()
    signed_up = await web.signup("jon@acme.example")
    workspace = signed_up.body["workspace"]["id"]
    old_session = (await web.login("jon@acme.example")).token
    assert (await other_worker.call("GET", "/auth/session", session=old_session)).status == 200
    await web.call("POST", "/auth/forgot-password", {"email": "jon@acme.example"})
    token = token_in((await web.smtp.inbox.wait_for("jon@acme.example", count=2))[1])

    weak = await web.call("POST", "/auth/reset-password", {"token": token, "newPassword": "jon@acme.example"})
    assert weak.status == 400 and weak.body["error"].startswith("newPassword:"), "the link is not spent by this"
    done = await web.call("POST", "/auth/reset-password", {"token": token, "newPassword": "a new long passphrase"})
    assert done.status == 200, done.body
    reused = await web.call("POST", "/auth/reset-password", {"token": token, "newPassword": "another passphrase"})
    assert reused.status == 400 and reused.body == {"error": "invalid or expired token", "code": "BAD_REQUEST"}

    assert (await web.login("jon@acme.example")).status == 401
    assert (await web.login("jon@acme.example", "a new long passphrase")).status == 200
    for cookie in (old_session, signed_up.token):
        assert await eventually_401(other_worker, cookie), "sessions from before the reset end within a second"
    assert ("reset_password", "user", "user") in await audit_actions(web.pool, workspace)


async def test_expired_reset_link_is_refused(web: Web) -> None:
    await web.signup("kim@acme.example")
    await web.call("POST", "/auth/forgot-password", {"email": "kim@acme.example"})
    token = token_in((await web.smtp.inbox.wait_for("kim@acme.example", count=2))[1])
    await web.pool.execute("UPDATE auth_tokens SET expires_at = now() - interval '1 second' "
                           "WHERE kind = 'reset_password'")
    expired = await web.call("POST", "/auth/reset-password", {"token": token, "newPassword": "a new long passphrase"})
    assert expired.status == 400 and expired.body["code"] == "BAD_REQUEST"
    assert (await web.login("kim@acme.example")).status == 200, "the password is unchanged"


async def eventually_401(web: Web, cookie: str, within_s: float = 3.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if (await web.call("GET", "/auth/session", session=cookie)).status == 401:
            return True
        await asyncio.sleep(0.05)
    return False


# ---- sessions from keys, logout, CSRF -------------------------------------------------------------

async def test_session_from_a_key_acts_with_the_keys_scopes(web: Web) -> None:
    client = await create_client(web.pool, "Keyed")
    reader = await create_key(web.pool, client["id"], "read only", scopes=["endpoints:read"])
    made = await web.call("POST", "/auth/session", key=reader.key)
    assert made.status == 201, made.body
    assert made.body["apiKey"]["keyPrefix"] == reader.key_prefix and made.body["scopes"] == ["endpoints:read"]
    assert made.body["user"] is None and made.body["role"] is None and made.body["expiresAt"]
    assert "httponly" in made.attributes()
    shown = await web.call("GET", "/auth/session", session=made.token)
    assert shown.status == 200 and shown.body["id"] == made.body["id"]
    assert (await web.call("GET", "/api/v1/endpoints", session=made.token)).status == 200
    write = await web.call("POST", "/api/v1/endpoints", {"url": "https://example.com/hook"}, session=made.token)
    assert write.status == 403 and write.body["code"] == "FORBIDDEN"
    assert (await web.call("POST", "/auth/session", key="mtr_not-a-key")).status == 401
    assert (await web.call("POST", "/auth/session")).status == 401
    assert ("login", "session", "api_key") in await audit_actions(web.pool, str(client["id"]))


async def test_logout_ends_the_session_within_a_second_everywhere(make_web: MakeWeb) -> None:
    web = await make_web()
    await web.signup("lou@acme.example")
    cookie = (await web.login("lou@acme.example")).token
    elsewhere = SessionAuthenticator(web.pool)          # another worker's cache, warmed before logout
    assert (await elsewhere.authenticate(cookie)).user_id is not None

    no_origin = await web.call("DELETE", "/auth/session", session=cookie, origin=None)
    assert no_origin.status == 403, "logout is a cookie write: our Origin is needed"
    foreign = await web.call("DELETE", "/auth/session", session=cookie, origin="https://evil.example")
    assert foreign.status == 403
    assert (await web.call("GET", "/auth/session", session=cookie)).status == 200

    out = await web.call("DELETE", "/auth/session", session=cookie)
    assert out.status == 204 and out.attributes()["max-age"] == "0" and out.token == ""
    assert (await web.call("GET", "/auth/session", session=cookie)).status == 401, "this worker: at once"
    assert (await web.call("GET", "/api/v1/event-types", session=cookie)).status == 401
    started = time.monotonic()
    while True:
        try:
            await elsewhere.authenticate(cookie)
        except Exception:
            break
        assert time.monotonic() - started < 2.5, "the other worker still accepts the cookie"
        await asyncio.sleep(0.05)
    again = await web.call("DELETE", "/auth/session", session=cookie)
    assert again.status == 401 and again.attributes()["max-age"] == "0"
    assert (await web.call("GET", "/auth/session")).status == 401
    workspace = (await web.pool.fetchval("SELECT client_id FROM memberships"))
    assert ("logout", "session", "user") in await audit_actions(web.pool, str(workspace))


async def test_cookie_writes_need_our_origin(web: Web) -> None:
    cookie = (await web.signup("max@acme.example")).token
    body = {"name": "order.created"}
    missing = await web.call("POST", "/api/v1/event-types", body, session=cookie, origin=None)
    assert missing.status == 403 and missing.body["code"] == "FORBIDDEN"
    foreign = await web.call("POST", "/api/v1/event-types", body, session=cookie, origin="https://evil.example")
    assert foreign.status == 403
    ours = await web.call("POST", "/api/v1/event-types", body, session=cookie)
    assert ours.status == 201, ours.body
    # Nor may another site log a browser in (or sign it up).
    assert (await web.login("max@acme.example", origin="https://evil.example")).status == 403
    assert (await web.call("POST", "/auth/signup", {"email": "x@acme.example", "password": PASSWORD},
                           origin="https://evil.example")).status == 403
    referer = await web.login("max@acme.example", origin=None, headers={"Referer": "https://evil.example/x"})
    assert referer.status == 403 and referer.cookie is None
    assert (await web.login("max@acme.example", origin=None)).status == 200, "scripts send no Origin"


# ---- the commands -----------------------------------------------------------------------------------

def mittr(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "MITTR_LOG__LEVEL": "warning"}
    return subprocess.run([sys.executable, "-m", "control.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60, check=False)


async def test_users_create_prints_a_link_or_takes_a_password_and_keys_create_still_works(
        db_url: str, web: Web) -> None:
    workspace = await create_client(web.pool, "Ops")
    made = await asyncio.to_thread(mittr, db_url, "users", "create", "--email", "Nia@Acme.example", "--role",
                                   "editor", "--workspace", str(workspace["id"]), "--json")
    assert made.returncode == 0, made.stderr
    out = orjson.loads(made.stdout)
    assert out["role"] == "editor" and out["user"]["emailVerified"] is True
    assert out["workspace"]["id"] == str(workspace["id"]) and "/reset-password?token=" in out["resetLink"]
    token = out["resetLink"].split("token=", 1)[1]
    assert (await web.call("POST", "/auth/reset-password", {"token": token,
                                                            "newPassword": "nia's passphrase"})).status == 200
    nia = await web.login("nia@acme.example", "nia's passphrase")
    assert nia.status == 200 and nia.body["role"] == "editor" and nia.body["workspace"]["name"] == "Ops"

    typed = await asyncio.to_thread(mittr, db_url, "users", "create", "--email", "oz@acme.example", "--role",
                                    "viewer", "--workspace", str(workspace["id"]), "--password-stdin",
                                    stdin="oz's passphrase\n")
    assert typed.returncode == 0, typed.stderr
    assert "oz@acme.example is viewer" in typed.stdout and "reset-password" not in typed.stdout
    assert (await web.login("oz@acme.example", "oz's passphrase")).body["role"] == "viewer"

    weak = await asyncio.to_thread(mittr, db_url, "users", "create", "--email", "pat@acme.example", "--role",
                                   "admin", "--password-stdin", stdin="12345678\n")
    assert weak.returncode != 0 and "password:" in weak.stderr
    nowhere = await asyncio.to_thread(mittr, db_url, "users", "create", "--email", "pat@acme.example", "--role",
                                      "admin", "--workspace", str(uuid.uuid4()))
    assert nowhere.returncode != 0 and "not found" in nowhere.stderr
    assert ("create", "team_member", "system") in await audit_actions(web.pool, str(workspace["id"]))

    key = await asyncio.to_thread(mittr, db_url, "keys", "create", "--name", "ci", "--json")
    assert key.returncode == 0, key.stderr
    raw = orjson.loads(key.stdout)["key"]
    assert (await web.call("GET", "/api/v1/event-types", key=raw)).status == 200
    for command in (["users", "create", "--help"], ["keys", "create", "--help"]):
        shown = await asyncio.to_thread(mittr, db_url, *command)
        assert shown.returncode == 0 and "usage: mittr" in shown.stdout
