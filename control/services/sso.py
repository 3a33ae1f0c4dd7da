"""Single sign-on with OAuth 2.0 / OpenID Connect providers: Google, GitHub and any configured OIDC
provider ([sso.google], [sso.github], [sso.oidc.<name>]; docs/sso.md).

The flow, authorization code with PKCE:
- `begin`: a random `state` (stored only as its SHA-256, single-use, expiring after
  `[sso] state_ttl_s`), bound to the browser by a random cookie (its SHA-256 stored with it); a PKCE
  verifier (S256; stored sealed with the encryption key); for OIDC a `nonce` (its SHA-256 stored).
  The browser is sent to the provider's authorization endpoint.
- `finish`: the state is spent (only from the browser that started it, only once, only in time),
  the code exchanged (authlib, with the verifier), and for OIDC the ID token checked: signature
  against the provider's JWKS (asymmetric algorithms only), iss, aud (and azp), exp, iat and nonce.
  The address must be verified by the provider (OIDC `email_verified`, GitHub's primary verified
  address from /user/emails); then sso_login links or creates the account and starts a session.

Provider URLs come from the operator's configuration, not from tenants, so no SSRF policy applies;
every call has `[sso] http_timeout_s` as its timeout.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
import httpx2
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from control.crypto import box_for
from control.errors import ApiError, BadRequest, NotFound, Unauthorized, ValidationError
from control.policy.tokens import digest
from control.services.accounts import SignedIn
from control.services.sso_login import sign_in_by_verified_email
from control.settings import Settings, SettingsError
from control.store.queries import q

PROVIDER_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
RESERVED_NAMES = frozenset({"google", "github", "saml", "discover"})
# Asymmetric only: an HS256 token would be checked with the client secret, which others may hold.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GOOGLE_ISSUER = "https://accounts.google.com"
OIDC_KEYS = frozenset({"enabled", "display_name", "issuer", "discovery_url", "client_id", "client_secret",
                       "scopes", "token_auth_method"})
METADATA_TTL_S = 3600.0
KEYS_REFRESH_MIN_S = 30.0        # an unknown key id refetches the JWKS at most this often
CLOCK_LEEWAY_S = 60
MAX_PARAM = 2048
MAX_NEXT = 2000
BROWSER_COOKIE = "mittr_sso"
BROWSER_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


# ---- errors ----------------------------------------------------------------------------------------

class StateInvalid(BadRequest):
    code = "SSO_STATE_INVALID"


class StateUsed(BadRequest):
    code = "SSO_STATE_USED"


class StateExpired(BadRequest):
    code = "SSO_STATE_EXPIRED"


class CodeRejected(Unauthorized):
    code = "SSO_CODE_REJECTED"


class Denied(Unauthorized):
    code = "SSO_DENIED"


class TokenInvalid(Unauthorized):
    code = "SSO_TOKEN_INVALID"


class EmailNotVerified(ApiError):
    status, code = 403, "EMAIL_NOT_VERIFIED"


class ProviderUnavailable(ApiError):
    status, code = 502, "SSO_PROVIDER_UNAVAILABLE"


# ---- configuration (pure) --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Provider:
    """One enabled provider. `kind` oidc: discovery, ID token; github: OAuth 2.0 and its REST API."""
    name: str
    display_name: str
    kind: Literal["oidc", "github"]
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    token_auth_method: str = "client_secret_basic"  # noqa: S105 - a method's name, not a secret
    discovery_url: str = ""
    issuer: str = ""                       # "" (Google): the discovery document's issuer
    authorize_url: str = ""                # github
    token_url: str = ""                    # github
    api_url: str = ""                      # github

    def public(self) -> dict[str, Any]:
        return {"id": self.name, "name": self.display_name, "type": "oidc" if self.kind == "oidc" else "oauth2",
                "loginUrl": f"/auth/sso/{self.name}/login"}


@dataclass(frozen=True, slots=True)
class SsoConfig:
    providers: dict[str, Provider]
    state_ttl_s: float
    timeout_s: float


def _text(table: dict[str, Any], key: str, where: str, *, required: bool) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise SettingsError(f"{where}.{key}: expected a string")
    value = value.strip()
    if required and not value:
        raise SettingsError(f"{where}.{key}: required when the provider is enabled")
    return value


def _url(table: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = _text(table, key, where, required=required)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"{where}.{key}: expected an http(s) URL, got {value!r}")
    return value.rstrip("/") if key in ("issuer", "api_url") else value


def _scopes(table: dict[str, Any], where: str, needed: tuple[str, ...]) -> tuple[str, ...]:
    value = table.get("scopes", ["openid", "email", "profile"])
    if not isinstance(value, list) or not all(isinstance(s, str) and s and " " not in s for s in value):
        raise SettingsError(f"{where}.scopes: expected a list of scope names")
    missing = [s for s in needed if s not in value]
    if missing:
        raise SettingsError(f"{where}.scopes: must include {', '.join(missing)}")
    return tuple(value)


def _enabled(table: Any, where: str) -> bool:
    if not isinstance(table, dict):
        raise SettingsError(f"{where}: expected a table")
    value = table.get("enabled", False)
    if not isinstance(value, bool):
        raise SettingsError(f"{where}.enabled: expected true or false")
    return value


def _auth_method(table: dict[str, Any], where: str, default: str) -> str:
    value = table.get("token_auth_method", default)
    if value not in TOKEN_AUTH_METHODS:
        raise SettingsError(f"{where}.token_auth_method: one of {', '.join(TOKEN_AUTH_METHODS)}")
    return str(value)


def parse_sso_config(section: dict[str, Any]) -> SsoConfig:
    """The [sso] section checked; SettingsError names the setting at fault."""
    providers: dict[str, Provider] = {}
    google = section.get("google", {})
    if _enabled(google, "sso.google"):
        providers["google"] = Provider(
            "google", "Google", "oidc", _text(google, "client_id", "sso.google", required=True),
            _text(google, "client_secret", "sso.google", required=True),
            _scopes(google, "sso.google", ("openid", "email")),
            discovery_url=_url(google, "discovery_url", "sso.google"))
    github = section.get("github", {})
    if _enabled(github, "sso.github"):
        providers["github"] = Provider(
            "github", "GitHub", "github", _text(github, "client_id", "sso.github", required=True),
            _text(github, "client_secret", "sso.github", required=True),
            _scopes(github, "sso.github", ("user:email",)),
            token_auth_method="client_secret_post",  # noqa: S106 - a method's name

            authorize_url=_url(github, "authorize_url", "sso.github"),
            token_url=_url(github, "token_url", "sso.github"), api_url=_url(github, "api_url", "sso.github"))
    oidc = section.get("oidc", {})
    if not isinstance(oidc, dict):
        raise SettingsError("sso.oidc: expected tables [sso.oidc.<name>]")
    for name, table in oidc.items():
        where = f"sso.oidc.{name}"
        if not PROVIDER_NAME.match(name) or name in RESERVED_NAMES:
            raise SettingsError(f"{where}: the name must be 1-32 lower-case letters, digits or '-', "
                                f"and not one of {', '.join(sorted(RESERVED_NAMES))}")
        if not _enabled(table, where):
            continue
        unknown = sorted(set(table) - OIDC_KEYS)
        if unknown:
            raise SettingsError(f"{where}.{unknown[0]}: unknown setting")
        issuer = _url(table, "issuer", where)
        providers[name] = Provider(
            name, _text(table, "display_name", where, required=False) or name, "oidc",
            _text(table, "client_id", where, required=True), _text(table, "client_secret", where, required=True),
            _scopes(table, where, ("openid", "email")),
            token_auth_method=_auth_method(table, where, "client_secret_basic"),
            discovery_url=_url(table, "discovery_url", where, required=False)
            or f"{issuer}/.well-known/openid-configuration",
            issuer=issuer)
    ttl, timeout = section.get("state_ttl_s", 600), section.get("http_timeout_s", 10.0)
    if not isinstance(ttl, int | float) or isinstance(ttl, bool) or not 30 <= ttl <= 3600:
        raise SettingsError("sso.state_ttl_s: seconds, 30 to 3600")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 120:
        raise SettingsError("sso.http_timeout_s: seconds, more than 0 and at most 120")
    return SsoConfig(providers, float(ttl), float(timeout))


def check_settings(settings: Settings) -> None:
    """Raise SettingsError for an unusable [sso] section (called before anything starts)."""
    parse_sso_config(settings.section("sso"))


# ---- request parts (pure) --------------------------------------------------------------------------

def parse_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this server only (no scheme, no host, no '//' or '\\'
    that a browser would read as another host), default '/'."""
    if raw is None or raw == "":
        return "/"
    bad = (len(raw) > MAX_NEXT or not raw.startswith("/") or raw.startswith("//") or "\\" in raw
           or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in raw))
    if bad or urlsplit(raw).netloc or urlsplit(raw).scheme:
        raise ValidationError("next: a path on this server, starting with a single '/'")
    return raw


def redirect_uri(base: str, provider: str) -> str:
    return f"{base.rstrip('/')}/auth/sso/{provider}/callback"


def email_is_verified(value: object) -> bool:
    """OIDC says a boolean; some providers send the string "true"."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def display_name(claims: dict[str, Any], email: str) -> str:
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [claims.get("given_name"), claims.get("family_name")]
        name = " ".join(p for p in parts if isinstance(p, str) and p.strip())
    return name.strip() if name and name.strip() else email.split("@", 1)[0]


def github_primary_email(emails: object) -> str | None:
    """The primary address when GitHub says it is verified; None otherwise."""
    if not isinstance(emails, list):
        return None
    for e in emails:
        if isinstance(e, dict) and e.get("primary") is True and e.get("verified") is True \
                and isinstance(e.get("email"), str):
            return str(e["email"])
    return None


@dataclass(frozen=True, slots=True)
class Begun:
    url: str
    browser_token: str
    max_age_s: int


@dataclass(frozen=True, slots=True)
class Finished:
    signed_in: SignedIn
    next_path: str


@dataclass(slots=True)
class _Keys:
    keys: KeySet
    fetched_at: float


# ---- I/O -------------------------------------------------------------------------------------------

class SsoService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self.cfg = parse_sso_config(settings.section("sso"))
        self.box = box_for(settings.security["encryption_key"])
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self._keys: dict[str, _Keys] = {}

    def providers(self) -> dict[str, Any]:
        return {"providers": [p.public() for p in self.cfg.providers.values()]}

    def _provider(self, name: str) -> Provider:
        found = self.cfg.providers.get(name)
        if found is None:
            raise NotFound("no such single sign-on provider is configured")
        return found

    def _oauth(self, p: Provider, redirect: str, token: dict[str, Any] | None = None) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(client_id=p.client_id, client_secret=p.client_secret,
                                 token_endpoint_auth_method=p.token_auth_method, scope=" ".join(p.scopes),
                                 redirect_uri=redirect, code_challenge_method="S256", token=token,
                                 timeout=self.cfg.timeout_s, follow_redirects=False)

    # -- the way out

    async def begin(self, name: str, next_raw: str | None, base: str, browser_token: str | None) -> Begun:
        """Record a new single-use state and return the provider's authorization URL. A browser
        that already holds a sign-in cookie keeps it (two tabs may sign in at once)."""
        p = self._provider(name)
        next_path = parse_next(next_raw)
        if browser_token is None or not BROWSER_TOKEN.match(browser_token):
            browser_token = secrets.token_urlsafe(32)
        state, verifier = secrets.token_urlsafe(32), generate_token(64)
        nonce = secrets.token_urlsafe(24) if p.kind == "oidc" else None
        endpoint = p.authorize_url if p.kind == "github" else \
            str((await self._oidc_metadata(p))["authorization_endpoint"])
        extra = {"nonce": nonce} if nonce else {}
        async with self._oauth(p, redirect_uri(base, p.name)) as client:
            url, _ = client.create_authorization_url(endpoint, state=state, code_verifier=verifier, **extra)
        await self.pool.execute(q("sso_insert_state"), digest(state), digest(browser_token), p.name,
                                self.box.seal(verifier), digest(nonce) if nonce else None, next_path,
                                self.cfg.state_ttl_s)
        return Begun(str(url), browser_token, int(self.cfg.state_ttl_s))

    # -- the way back

    async def finish(self, name: str, params: dict[str, str | None], browser_token: str | None, base: str,
                     ip: str | None, user_agent: str | None) -> Finished:
        p = self._provider(name)
        state_row = await self._spend_state(p, params.get("state"), browser_token)
        error = params.get("error")
        if error:
            shown = re.sub(r"[^a-z_]", "", error.lower())[:64] or "error"
            raise Denied(f"the provider did not sign you in ({shown}); start again")
        code = params.get("code")
        if not code or len(code) > MAX_PARAM:
            raise BadRequest("code: missing from the provider's redirect")
        verifier = self.box.open(state_row["code_verifier"])
        redirect = redirect_uri(base, p.name)
        if p.kind == "github":
            email, name_, subject = await self._github_identity(p, code, verifier, redirect)
            method = "oauth2"
        else:
            email, name_, subject = await self._oidc_identity(p, code, verifier, redirect, state_row["nonce_hash"])
            method = "oidc"
        signed_in = await sign_in_by_verified_email(
            self.pool, self.settings, email=email, name=name_, method=method, provider=p.name, subject=subject,
            client_id=None, ip=ip, user_agent=user_agent)
        return Finished(signed_in, state_row["next_path"])

    async def _spend_state(self, p: Provider, state: str | None, browser_token: str | None) -> asyncpg.Record:
        """The state's row, used up; 400 SSO_STATE_INVALID / _USED / _EXPIRED otherwise."""
        if not state or len(state) > MAX_PARAM:
            raise StateInvalid("state: missing or malformed; start signing in again")
        if not browser_token or len(browser_token) > MAX_PARAM:
            raise StateInvalid("this sign-in was not started in this browser (no sign-in cookie); start again")
        row = await self.pool.fetchrow(q("sso_spend_state"), digest(state), digest(browser_token), p.name)
        if row is not None:
            return row
        seen = await self.pool.fetchrow(q("sso_state_status"), digest(state))
        if seen is None or seen["provider"] != p.name or not hmac.compare_digest(
                bytes(seen["browser_hash"]), digest(browser_token)):
            raise StateInvalid("unknown state, or a sign-in started in another browser; start signing in again")
        if seen["used"]:
            raise StateUsed("this sign-in link was already used; start signing in again")
        raise StateExpired("this sign-in took too long and expired; start signing in again")

    async def _exchange(self, client: AsyncOAuth2Client, url: str, code: str, verifier: str) -> dict[str, Any]:
        try:
            token = await client.fetch_token(url, code=code, code_verifier=verifier, grant_type="authorization_code")
        except OAuthError as exc:
            raise CodeRejected(f"the provider refused the sign-in code ({exc.error}): it may have been used "
                               "already or expired; start signing in again") from exc
        except (httpx2.HTTPError, ValueError) as exc:
            raise ProviderUnavailable("the provider's token endpoint could not be reached or answered "
                                      "unexpectedly") from exc
        if not isinstance(token, dict) or not token.get("access_token"):
            raise CodeRejected("the provider's token response had no access token")
        return dict(token)

    async def _github_identity(self, p: Provider, code: str, verifier: str, redirect: str) -> tuple[str, str, str]:
        async with self._oauth(p, redirect) as client:
            await self._exchange(client, p.token_url, code, verifier)
            headers = {"Accept": "application/vnd.github+json"}
            try:
                user_resp = await client.get(f"{p.api_url}/user", headers=headers)
                emails_resp = await client.get(f"{p.api_url}/user/emails", headers=headers)
                if user_resp.status_code != 200 or emails_resp.status_code != 200:
                    raise ProviderUnavailable(f"GitHub's API answered {user_resp.status_code}/"
                                              f"{emails_resp.status_code} for the user and their addresses")
                user, emails = user_resp.json(), emails_resp.json()
            except (httpx2.HTTPError, ValueError) as exc:
                raise ProviderUnavailable("GitHub's API could not be reached or answered unexpectedly") from exc
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise ProviderUnavailable("GitHub's /user answer has no id")
        email = github_primary_email(emails)
        if email is None:
            raise EmailNotVerified("your GitHub account has no verified primary e-mail address; verify it at "
                                   "GitHub, then sign in again")
        name = user.get("name") if isinstance(user.get("name"), str) and user.get("name") else user.get("login")
        return email, str(name or email.split("@", 1)[0]), str(user["id"])

    async def _oidc_identity(self, p: Provider, code: str, verifier: str, redirect: str,
                             nonce_hash: bytes | None) -> tuple[str, str, str]:
        meta = await self._oidc_metadata(p)
        async with self._oauth(p, redirect) as client:
            token = await self._exchange(client, str(meta["token_endpoint"]), code, verifier)
            id_token = token.get("id_token")
            if not isinstance(id_token, str) or not id_token:
                raise TokenInvalid("the provider sent no ID token (is the 'openid' scope granted?)")
            claims = await self._check_id_token(p, meta, id_token, nonce_hash)
            if "email_verified" not in claims and meta.get("userinfo_endpoint"):
                claims = {**await self._userinfo(client, str(meta["userinfo_endpoint"]), claims["sub"]), **claims}
        email = claims.get("email")
        if not isinstance(email, str) or not email or not email_is_verified(claims.get("email_verified")):
            raise EmailNotVerified("the provider did not confirm that your e-mail address is verified; verify it "
                                   "there, then sign in again")
        return email, display_name(claims, email), str(claims["sub"])

    async def _userinfo(self, client: AsyncOAuth2Client, url: str, subject: str) -> dict[str, Any]:
        try:
            resp = await client.get(url)
            info = resp.json() if resp.status_code == 200 else None
        except (httpx2.HTTPError, ValueError) as exc:
            raise ProviderUnavailable("the provider's userinfo endpoint could not be reached") from exc
        if not isinstance(info, dict):
            raise ProviderUnavailable("the provider's userinfo endpoint answered unexpectedly")
        if info.get("sub") != subject:       # OIDC Core 5.3.2: must be the ID token's subject
            raise TokenInvalid("userinfo: its subject is not the ID token's")
        return {k: info[k] for k in ("email", "email_verified", "name", "given_name", "family_name") if k in info}

    async def _check_id_token(self, p: Provider, meta: dict[str, Any], id_token: str,
                              nonce_hash: bytes | None) -> dict[str, Any]:
        """Signature (JWKS), then iss, aud, azp, exp, iat and the nonce of this sign-in."""
        offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in SIGNING_ALGORITHMS if a in offered] or ["RS256"]
        try:
            try:
                decoded = jwt.decode(id_token, await self._jwks(p, meta, refresh=False), algorithms=algorithms)
            except InvalidKeyIdError:      # the provider rotated its keys: fetch them again (rate-limited)
                decoded = jwt.decode(id_token, await self._jwks(p, meta, refresh=True), algorithms=algorithms)
            claims = dict(decoded.claims)
            issuers = [str(meta["issuer"])] + (["accounts.google.com"] if meta["issuer"] == GOOGLE_ISSUER else [])
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY_S, iss={"essential": True, "values": issuers},
                aud={"essential": True, "value": p.client_id}, exp={"essential": True},
                iat={"essential": True}, sub={"essential": True}).validate(claims)
        except ExpiredTokenError as exc:
            raise TokenInvalid("ID token: expired") from exc
        except JoseError as exc:
            raise TokenInvalid(f"ID token: rejected ({exc.error}: {exc.description or 'check failed'})") from exc
        except ValueError as exc:
            raise TokenInvalid("ID token: malformed") from exc
        azp = claims.get("azp")
        if azp is not None and azp != p.client_id:
            raise TokenInvalid("ID token: authorized party (azp) is another client")
        nonce = claims.get("nonce")
        if nonce_hash is None or not isinstance(nonce, str) or not hmac.compare_digest(
                digest(nonce), bytes(nonce_hash)):
            raise TokenInvalid("ID token: nonce does not match this sign-in")
        return claims

    async def _oidc_metadata(self, p: Provider) -> dict[str, Any]:
        cached = self._metadata.get(p.name)
        if cached is not None and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        meta = await self._get_json(p.discovery_url, "discovery document")
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(meta.get(key), str) or not meta[key]:
                raise ProviderUnavailable(f"the provider's discovery document has no {key}")
        if p.issuer and meta["issuer"].rstrip("/") != p.issuer:
            raise ProviderUnavailable(f"the provider's discovery document names issuer {meta['issuer']!r}, "
                                      f"not the configured {p.issuer!r}")
        self._metadata[p.name] = (time.monotonic(), meta)
        return meta

    async def _jwks(self, p: Provider, meta: dict[str, Any], *, refresh: bool) -> KeySet:
        cached = self._keys.get(p.name)
        now = time.monotonic()
        fresh_enough = cached is not None and (
            now - cached.fetched_at < KEYS_REFRESH_MIN_S if refresh else now - cached.fetched_at < METADATA_TTL_S)
        if cached is not None and fresh_enough:
            return cached.keys
        data = await self._get_json(str(meta["jwks_uri"]), "signing keys (JWKS)")
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable("the provider's signing keys (JWKS) could not be read") from exc
        self._keys[p.name] = _Keys(keys, now)
        return keys

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with httpx2.AsyncClient(timeout=self.cfg.timeout_s, follow_redirects=False) as client:
                resp = await client.get(url, headers={"Accept": "application/json"})
            data = resp.json() if resp.status_code == 200 else None
        except (httpx2.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"the provider's {what} could not be fetched") from exc
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"the provider's {what} answered unexpectedly")
        return data
