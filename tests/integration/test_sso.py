"""OAuth/OIDC single sign-on end to end: the real app in-process, a real OIDC provider (and a GitHub
look-alike) on 127.0.0.1 with its own keys (tests/support/oidc_provider.py), a real database.

One database and app serve the module; each test signs in its own person (a fresh address and
subjects), so tests never see each other's rows. A `Browser` follows the redirects as a browser
would: GET /auth/sso/<p>/login (state cookie) -> the provider's authorization endpoint ->
GET /auth/sso/<p>/callback?code&state -> the session cookie -> the API.

Refusals: a wrong, replayed, expired or other-browser state; a replayed code; an unverified
address; an ID token with a wrong nonce, audience, issuer, signature or expiry; an open redirect
in `next`. Linking: only by a verified address, never into an unconfirmed account.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import orjson
import pytest
from blacksheep import Application, Content, Request
from blacksheep.testing.helpers import get_example_scope
from joserfc.jwk import RSAKey

from control.policy.tokens import digest
from control.services.sso_login import sign_in_by_verified_email
from control.settings import load_settings
from control.store.queries import q
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, Person

PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass
class Hop:
    status: int
    headers: dict[str, str]
    cookies: dict[str, str]          # name -> the whole Set-Cookie header
    body: Any

    @property
    def location(self) -> str:
        return self.headers["location"]

    @property
    def code(self) -> str:
        return str(self.body["code"])


@dataclass
class Browser:
    """One browser: keeps the cookies our server sets, follows the provider's redirect."""

    app: Application
    jar: dict[str, str] = field(default_factory=dict)

    async def get(self, path: str) -> Hop:
        path, _, query = path.partition("?")
        scope = get_example_scope("GET", path, {}, query=query or None, cookies=dict(self.jar) or None)
        request = Request.incoming(scope["method"], scope["raw_path"], scope["query_string"], scope["headers"])
        request.scope = scope  # type: ignore[assignment]
        response = await self.app.handle(request)
        raw = await response.read() or b""
        headers = {k.decode().lower(): v.decode() for k, v in response.headers}
        cookies = {}
        for value in response.headers.get(b"set-cookie"):
            text = value.decode()
            name, _, rest = text.partition("=")
            cookies[name] = text
            self.jar[name] = rest.split(";", 1)[0]
        return Hop(response.status, headers, cookies, orjson.loads(raw) if raw else None)

    async def start(self, provider: str, next_path: str | None = None) -> Hop:
        query = "" if next_path is None else f"?next={quote(next_path, safe='/')}"
        return await self.get(f"/auth/sso/{provider}/login{query}")

    async def at_provider(self, authorize_url: str) -> str:
        """The provider signs its current person in at once and sends the browser back: the
        callback's path and query on our server."""
        async with aiohttp.ClientSession() as http, http.get(authorize_url, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            back = urlsplit(resp.headers["Location"])
        assert f"{back.scheme}://{back.netloc}" == PUBLIC_URL
        return f"{back.path}?{back.query}"

    async def sign_in(self, provider: str, next_path: str | None = None) -> tuple[Hop, str]:
        begun = await self.start(provider, next_path)
        assert begun.status == 302, begun.body
        callback = await self.at_provider(begun.location)
        return await self.get(callback), callback


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[OidcProvider]:
    provider = await OidcProvider().start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture(scope="module")
def sso_config(idp: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sso") / "mittr.toml"
    path.write_text(f"""
[auth]
public_url = "{PUBLIC_URL}"

[sso]
http_timeout_s = 5.0

[sso.google]
enabled = true
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
discovery_url = "{idp.url}/.well-known/openid-configuration"

[sso.github]
enabled = true
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorize_url = "{idp.url}/login/oauth/authorize"
token_url = "{idp.url}/login/oauth/access_token"
api_url = "{idp.url}/api"

[sso.oidc.acme]
enabled = true
display_name = "Acme SSO"
issuer = "{idp.url}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
token_auth_method = "client_secret_post"
""")
    return path


@contextlib.asynccontextmanager
async def running_site(db_url: str, config: Path, **auth: str) -> AsyncIterator[Application]:
    from api.app import create_app

    env = {"DATABASE_URL": db_url, "MITTR_SECURITY__ENCRYPTION_KEY": os.environ["MITTR_SECURITY__ENCRYPTION_KEY"],
           "MITTR_MAIL__OUTBOX_DIR": str(config.parent / "outbox"),
           **{f"MITTR_AUTH__{k.upper()}": v for k, v in auth.items()}}
    app = create_app(load_settings(config, env=env))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture(scope="module")
async def site(module_db_url: str, sso_config: Path) -> AsyncIterator[Application]:
    async with running_site(module_db_url, sso_config) as app:
        yield app


@pytest.fixture
def pool(module_pool: Any) -> Any:
    return module_pool


@pytest.fixture
def ada(idp: OidcProvider) -> Person:
    """This test's person at the provider: an address and subjects no other test uses."""
    tag = uuid.uuid4().hex[:10]
    person = Person(f"sub-{tag}", f"ada-{tag}@example.com", github_id=int(tag[:7], 16))
    idp.reset(person)
    return person


async def login_audits(pool: Any, email: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT after FROM audit_logs WHERE action = 'login' AND actor_label = $1 ORDER BY id",
                            email)
    return [r["after"] for r in rows]


async def users_with(pool: Any, email: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM users WHERE email = $1", email))


async def identities_of(pool: Any, email: str) -> list[tuple[str, str, uuid.UUID]]:
    rows = await pool.fetch("SELECT provider, subject, user_id FROM sso_identities WHERE email = $1 "
                            "ORDER BY provider", email)
    return [(r["provider"], r["subject"], r["user_id"]) for r in rows]


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


# ---- the providers ---------------------------------------------------------------------------------

async def test_providers_lists_the_configured_ones_publicly(site: Application) -> None:
    hop = await Browser(site).get("/auth/providers")
    assert hop.status == 200
    assert hop.body == {"providers": [
        {"id": "google", "name": "Google", "type": "oidc", "loginUrl": "/auth/sso/google/login"},
        {"id": "github", "name": "GitHub", "type": "oauth2", "loginUrl": "/auth/sso/github/login"},
        {"id": "acme", "name": "Acme SSO", "type": "oidc", "loginUrl": "/auth/sso/acme/login"}]}
    unknown = await Browser(site).get("/auth/sso/okta/login")
    assert unknown.status == 404 and unknown.code == "NOT_FOUND"


# ---- success ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", ["acme", "google"])
async def test_oidc_sign_in_end_to_end(site: Application, pool: Any, idp: OidcProvider, ada: Person,
                                       provider: str) -> None:
    browser = Browser(site)
    begun = await browser.start(provider, "/endpoints?tab=all")
    assert begun.status == 302
    sso_cookie = begun.cookies["mittr_sso"]
    assert "HttpOnly" in sso_cookie and "SameSite=Lax" in sso_cookie and "Path=/auth/sso" in sso_cookie
    sent = parse_qs(urlsplit(begun.location).query)
    assert begun.location.startswith(f"{idp.url}/authorize?")
    assert sent["code_challenge_method"] == ["S256"] and len(sent["code_challenge"][0]) == 43
    assert sent["redirect_uri"] == [f"{PUBLIC_URL}/auth/sso/{provider}/callback"]
    assert sent["nonce"][0] and sent["state"][0] and "openid" in sent["scope"][0].split()
    # Only digests are stored: the state and the browser's cookie are found by their SHA-256.
    stored = await pool.fetchrow("SELECT * FROM sso_states WHERE state_hash = $1", digest(sent["state"][0]))
    assert bytes(stored["browser_hash"]) == digest(browser.jar["mittr_sso"])
    assert sent["state"][0] not in str(dict(stored)) and stored["code_verifier"] not in str(sent)

    done = await browser.get(await browser.at_provider(begun.location))
    assert done.status == 302, done.body
    assert done.location == "/endpoints?tab=all"
    assert "HttpOnly" in done.cookies["mittr_session"]
    assert idp.token_requests[-1]["code_verifier"]          # PKCE: the verifier went with the code

    session = await browser.get("/auth/session")
    assert session.status == 200
    assert session.body["user"]["email"] == ada.email and session.body["user"]["emailVerified"] is True
    assert session.body["role"] == "admin"                   # a new account with its own workspace
    api = await browser.get("/api/v1/endpoints")
    assert api.status == 200, api.body
    assert await login_audits(pool, ada.email) == [
        {"method": "oidc", "provider": provider, "newAccount": True, "linked": True}]

    again, _ = await Browser(site).sign_in(provider)
    assert again.status == 302 and again.location == "/"
    assert await users_with(pool, ada.email) == 1
    assert await pool.fetchval("SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id "
                               "WHERE u.email = $1", ada.email) == 1
    assert (await login_audits(pool, ada.email))[-1] == {"method": "oidc", "provider": provider,
                                                         "newAccount": False, "linked": False}


async def test_github_uses_the_primary_verified_address(site: Application, pool: Any, idp: OidcProvider,
                                                        ada: Person) -> None:
    idp.reset(dataclasses.replace(ada, github_emails=[
        {"email": f"old-{ada.email}", "primary": False, "verified": True},
        {"email": ada.email.upper(), "primary": True, "verified": True}]))
    browser = Browser(site)
    begun = await browser.start("github")
    assert begun.location.startswith(f"{idp.url}/login/oauth/authorize?")
    assert "nonce" not in parse_qs(urlsplit(begun.location).query)
    done = await browser.get(await browser.at_provider(begun.location))
    assert done.status == 302, done.body
    session = await browser.get("/auth/session")
    assert session.body["user"]["email"] == ada.email
    assert [(p, s) for p, s, _ in await identities_of(pool, ada.email)] == [("github", str(ada.github_id))]
    assert (await login_audits(pool, ada.email))[-1]["method"] == "oauth2"


async def test_github_without_a_verified_primary_address_is_refused(site: Application, pool: Any,
                                                                     idp: OidcProvider, ada: Person) -> None:
    idp.reset(dataclasses.replace(ada, github_emails=[
        {"email": ada.email, "primary": True, "verified": False},
        {"email": f"other-{ada.email}", "primary": False, "verified": True}]))
    done, _ = await Browser(site).sign_in("github")
    assert done.status == 403 and done.code == "EMAIL_NOT_VERIFIED"
    assert await users_with(pool, ada.email) == await users_with(pool, f"other-{ada.email}") == 0


# ---- the state -------------------------------------------------------------------------------------

async def test_a_wrong_state_is_refused(site: Application, ada: Person) -> None:
    browser = Browser(site)
    callback = await browser.at_provider((await browser.start("acme")).location)
    state = state_of(callback)
    wrong = await browser.get(callback.replace(state, state[:-4] + "AAAA"))
    assert wrong.status == 400 and wrong.code == "SSO_STATE_INVALID" and "mittr_session" not in wrong.cookies
    missing = await browser.get(callback.replace(f"state={state}", "state="))
    assert missing.status == 400 and missing.code == "SSO_STATE_INVALID"
    other_provider = await browser.get(callback.replace("/acme/", "/google/"))
    assert other_provider.status == 400 and other_provider.code == "SSO_STATE_INVALID"


async def test_a_state_only_works_in_the_browser_that_started_it(site: Application, ada: Person) -> None:
    """Login CSRF: a callback link made in one browser does not sign another one in."""
    browser = Browser(site)
    callback = await browser.at_provider((await browser.start("acme")).location)
    other = await Browser(site).get(callback)
    assert other.status == 400 and other.code == "SSO_STATE_INVALID"
    stranger = Browser(site, {"mittr_sso": "x" * 43})
    assert (await stranger.get(callback)).code == "SSO_STATE_INVALID"
    assert (await browser.get(callback)).status == 302       # not used up by the refusals


async def test_a_replayed_state_is_refused(site: Application, ada: Person) -> None:
    browser = Browser(site)
    done, callback = await browser.sign_in("acme")
    assert done.status == 302
    replay = await browser.get(callback)
    assert replay.status == 400 and replay.code == "SSO_STATE_USED" and "mittr_session" not in replay.cookies


async def test_an_expired_state_is_refused(site: Application, pool: Any, ada: Person) -> None:
    browser = Browser(site)
    callback = await browser.at_provider((await browser.start("acme")).location)
    await pool.execute("UPDATE sso_states SET expires_at = now() - interval '1 second' WHERE state_hash = $1",
                       digest(state_of(callback)))
    late = await browser.get(callback)
    assert late.status == 400 and late.code == "SSO_STATE_EXPIRED"


async def test_next_must_be_a_path_on_this_server(site: Application) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "evil", "/a\tb"):
        hop = await Browser(site).get(f"/auth/sso/acme/login?next={quote(target, safe='')}")
        assert hop.status == 400 and hop.code == "VALIDATION_ERROR", target
        assert "location" not in hop.headers


# ---- the code and the ID token ---------------------------------------------------------------------

@pytest.mark.parametrize("provider", ["acme", "github"])
async def test_a_replayed_code_is_refused_by_the_provider(site: Application, ada: Person, provider: str) -> None:
    browser = Browser(site)
    done, first = await browser.sign_in(provider)
    assert done.status == 302
    used_code = parse_qs(urlsplit(first).query)["code"][0]
    # A fresh sign-in (new state) carrying the old code: the provider refuses it.
    fresh = await browser.at_provider((await browser.start(provider)).location)
    replay = await browser.get(f"/auth/sso/{provider}/callback?code={used_code}&state={state_of(fresh)}")
    assert replay.status == 401 and replay.code == "SSO_CODE_REJECTED", replay.body
    assert "mittr_session" not in replay.cookies


async def test_a_provider_refusal_is_reported(site: Application, ada: Person) -> None:
    browser = Browser(site)
    begun = await browser.start("acme")
    denied = await browser.get(f"/auth/sso/acme/callback?error=access_denied&state={state_of(begun.location)}")
    assert denied.status == 401 and denied.code == "SSO_DENIED" and "access_denied" in denied.body["error"]


@pytest.mark.parametrize(("change", "says"), [
    ({"nonce": "not-the-nonce-of-this-sign-in"}, "nonce"),
    ({"nonce": None}, "nonce"),
    ({"aud": "another-client"}, "aud"),
    ({"iss": "http://127.0.0.1:1/other-issuer"}, "iss"),
    ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 900}, "expired"),
    ({"azp": "another-client", "aud": [CLIENT_ID, "another-client"]}, "azp"),
])
async def test_id_token_checks(site: Application, pool: Any, idp: OidcProvider, ada: Person,
                               change: dict[str, Any], says: str) -> None:
    idp.id_token_changes = change
    done, _ = await Browser(site).sign_in("acme")
    assert done.status == 401 and done.code == "SSO_TOKEN_INVALID", done.body
    assert says in done.body["error"]
    assert await users_with(pool, ada.email) == 0


async def test_an_id_token_signed_by_another_key_is_refused(site: Application, idp: OidcProvider,
                                                            ada: Person) -> None:
    idp.sign_with = RSAKey.generate_key(2048, parameters={"kid": "k1"})    # same key id, other key
    done, _ = await Browser(site).sign_in("acme")
    assert done.status == 401 and done.code == "SSO_TOKEN_INVALID"


# ---- verified addresses and linking ----------------------------------------------------------------

async def test_an_unverified_address_is_refused(site: Application, pool: Any, idp: OidcProvider,
                                                ada: Person) -> None:
    idp.reset(dataclasses.replace(ada, email_verified=False))
    done, _ = await Browser(site).sign_in("acme")
    assert done.status == 403 and done.code == "EMAIL_NOT_VERIFIED"
    # No email_verified in the ID token, nor from userinfo: not verified either.
    idp.reset(dataclasses.replace(ada, email_verified=None))
    silent, _ = await Browser(site).sign_in("acme")
    assert silent.status == 403 and silent.code == "EMAIL_NOT_VERIFIED"
    assert await users_with(pool, ada.email) == 0


async def test_linking_happens_only_through_a_verified_address(site: Application, pool: Any, idp: OidcProvider,
                                                               ada: Person) -> None:
    owner = Browser(site)
    made, _ = await owner.sign_in("github")       # the owner's account (GitHub verified the address)
    assert made.status == 302
    mine = await owner.get("/auth/session")
    # Someone at the OIDC provider claims the owner's address, unverified: no way in, no link.
    idp.reset(dataclasses.replace(ada, sub=f"attacker-{ada.sub}", email_verified=False))
    refused, _ = await Browser(site).sign_in("acme")
    assert refused.status == 403 and refused.code == "EMAIL_NOT_VERIFIED"
    assert [p for p, _, _ in await identities_of(pool, ada.email)] == ["github"]
    # The owner at the OIDC provider, verified: the same account and workspace, now linked.
    idp.reset(ada)
    linked = Browser(site)
    ok, _ = await linked.sign_in("acme")
    assert ok.status == 302
    theirs = await linked.get("/auth/session")
    assert theirs.body["user"]["email"] == ada.email and theirs.body["workspace"] == mine.body["workspace"]
    assert await users_with(pool, ada.email) == 1
    links = await identities_of(pool, ada.email)
    assert [(p, s) for p, s, _ in links] == [("acme", ada.sub), ("github", str(ada.github_id))]
    assert links[0][2] == links[1][2]


async def test_an_unconfirmed_local_account_is_never_taken_over(site: Application, pool: Any,
                                                                ada: Person) -> None:
    """Pre-account hijacking: someone signed up with the victim's address and never confirmed it;
    the victim's verified SSO sign-in must not land in (or link to) that account."""
    scope = get_example_scope("POST", "/auth/signup", {"content-type": "application/json"})
    request = Request.incoming(scope["method"], scope["raw_path"], scope["query_string"], scope["headers"])
    request.scope = scope  # type: ignore[assignment]
    request.content = Content(b"application/json", orjson.dumps(
        {"email": ada.email, "password": "correct horse battery"}))
    assert (await site.handle(request)).status == 201
    done, _ = await Browser(site).sign_in("acme")
    assert done.status == 403 and done.code == "ACCOUNT_NOT_VERIFIED"
    assert await identities_of(pool, ada.email) == []
    assert await login_audits(pool, ada.email) == []


# ---- where a new person lands ----------------------------------------------------------------------

async def test_a_pending_invitation_is_joined(site: Application, pool: Any, ada: Person) -> None:
    from control.services.keys import create_client

    workspace = await create_client(pool, "Team Rocket")
    await pool.fetchrow(q("upsert_invitation"), digest(f"mti_{ada.sub}"), workspace["id"], ada.email, "editor",
                        None, 3600.0)
    browser = Browser(site)
    done, _ = await browser.sign_in("acme")
    assert done.status == 302, done.body
    session = await browser.get("/auth/session")
    assert session.body["workspace"]["id"] == str(workspace["id"]) and session.body["role"] == "editor"
    assert await pool.fetchval("SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id "
                               "WHERE u.email = $1", ada.email) == 1         # no workspace of its own
    assert await pool.fetchval("SELECT used_at IS NOT NULL FROM auth_tokens WHERE kind = 'invite' AND email = $1",
                               ada.email)


async def test_sign_up_turned_off_refuses_new_people(module_db_url: str, sso_config: Path, pool: Any,
                                                     ada: Person) -> None:
    async with running_site(module_db_url, sso_config, allow_signup="false") as closed:
        done, _ = await Browser(closed).sign_in("acme")
    assert done.status == 403 and done.code == "SIGNUP_DISABLED"
    assert await users_with(pool, ada.email) == 0


async def test_two_first_sign_ins_at_once_make_one_account(sso_config: Path, pool: Any, ada: Person) -> None:
    settings = load_settings(sso_config, env={"MITTR_SECURITY__ENCRYPTION_KEY":
                                              os.environ["MITTR_SECURITY__ENCRYPTION_KEY"]})
    results = await asyncio.gather(*(sign_in_by_verified_email(
        pool, settings, email=ada.email, name="Twin", method="oidc", provider=p, subject=ada.sub,
        client_id=None, ip=None, user_agent=None) for p in ("google", "acme")))
    assert results[0].body["user"]["id"] == results[1].body["user"]["id"]
    assert results[0].body["workspace"] == results[1].body["workspace"]
    assert await users_with(pool, ada.email) == 1
    assert len(await identities_of(pool, ada.email)) == 2


async def test_sign_in_starts_are_throttled_per_client_address(module_db_url: str, sso_config: Path,
                                                                pool: Any) -> None:
    """Each start stores a state row: past [auth] login_failures_per_ip starts from one address in the
    window, the answer is 429 with Retry-After and nothing more is stored (the login throttle's
    counters, with password logins' per-address limit)."""
    async with running_site(module_db_url, sso_config, login_failures_per_ip="3") as limited:
        await pool.execute("DELETE FROM login_throttle WHERE key LIKE 'sso-ip:%'")
        states = await pool.fetchval("SELECT count(*) FROM sso_states")
        for _ in range(3):
            assert (await Browser(limited).start("acme")).status == 302
        refused = await Browser(limited).start("acme")
        assert refused.status == 429 and refused.code == "RATE_LIMITED", refused.body
        assert 1 <= int(refused.headers["retry-after"]) <= 900
        assert await pool.fetchval("SELECT count(*) FROM sso_states") == states + 3
        assert await pool.fetchval("SELECT failures FROM login_throttle WHERE key = 'sso-ip:127.0.0.1'") == 4
        assert (await Browser(limited).get("/auth/providers")).status == 200     # the list is not counted
        assert (await Browser(limited).start("okta")).status == 404               # nor an unknown provider
        assert await pool.fetchval("SELECT failures FROM login_throttle WHERE key = 'sso-ip:127.0.0.1'") == 4
    await pool.execute("DELETE FROM login_throttle WHERE key LIKE 'sso-ip:%'")
