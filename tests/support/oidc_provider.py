"""A small but real OpenID Connect provider (and a GitHub look-alike) on 127.0.0.1 for SSO tests.

It holds its own RSA key, serves a discovery document, JWKS, an authorization endpoint (which signs
in whoever `person` is, at once), a token endpoint (client secret, single-use codes, PKCE S256
checked, redirect_uri checked), userinfo, and GitHub's three calls (/login/oauth/access_token,
/api/user, /api/user/emails). `id_token_changes` alters the next ID tokens' claims (a wrong nonce,
another audience, ...) and `sign_with` another key, so that the relying party's checks can be seen
refusing them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "mittr-test-client"
CLIENT_SECRET = "mittr-test-secret"


@dataclass
class Person:
    sub: str
    email: str
    email_verified: bool | None = True       # None: the claim is left out of the ID token
    name: str = "Ada Lovelace"
    github_id: int = 4242
    github_emails: list[dict[str, Any]] | None = None   # default: the email, primary, verified as above


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    person: Person
    used: bool = False


@dataclass
class OidcProvider:
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    person: Person = field(default_factory=lambda: Person("user-1", "ada@example.com"))
    id_token_changes: dict[str, Any] = field(default_factory=dict)
    sign_with: RSAKey | None = None
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"}))
    url: str = ""
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, Person] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> OidcProvider:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/userinfo", self._userinfo)
        app.router.add_get("/login/oauth/authorize", self._authorize)
        app.router.add_post("/login/oauth/access_token", self._github_token)
        app.router.add_get("/api/user", self._github_user)
        app.router.add_get("/api/user/emails", self._github_emails)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def reset(self, person: Person) -> None:
        self.person = person
        self.id_token_changes = {}
        self.sign_with = None

    # ---- OIDC

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
            "userinfo_endpoint": f"{self.url}/userinfo", "response_types_supported": ["code"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"]})

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.key.as_dict(private=False)]})

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("response_type") != "code" or q.get("client_id") != self.client_id \
                or q.get("code_challenge_method") != "S256" or not q.get("code_challenge") or not q.get("state"):
            return web.json_response({"error": "invalid_request", "query": dict(q)}, status=400)
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(q["client_id"], q["redirect_uri"], q["code_challenge"], q.get("nonce"), self.person)
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    def _client_ok(self, request: web.Request, form: Any) -> bool:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        else:
            cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        return cid == self.client_id and hmac.compare_digest(secret, self.client_secret)

    async def _redeem(self, request: web.Request) -> tuple[Grant | None, str]:
        """The grant for a valid, unused code (used up now), else the OAuth error."""
        form = await request.post()
        self.token_requests.append({k: str(v) for k, v in form.items()})
        if not self._client_ok(request, form):
            return None, "invalid_client"
        grant = self.grants.get(str(form.get("code", "")))
        if grant is None or grant.used:
            return None, "invalid_grant"
        grant.used = True
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if form.get("redirect_uri") != grant.redirect_uri or challenge != grant.challenge:
            return None, "invalid_grant"
        return grant, ""

    async def _token(self, request: web.Request) -> web.Response:
        grant, error = await self._redeem(request)
        if grant is None:
            return web.json_response({"error": error}, status=401 if error == "invalid_client" else 400)
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.url, "sub": grant.person.sub, "aud": self.client_id, "iat": now,
                                  "exp": now + 300, "nonce": grant.nonce, "email": grant.person.email,
                                  "name": grant.person.name}
        if grant.person.email_verified is not None:
            claims["email_verified"] = grant.person.email_verified
        claims.update(self.id_token_changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.sign_with or self.key
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        access = secrets.token_urlsafe(24)
        self.tokens[access] = grant.person
        return web.json_response({"access_token": access, "token_type": "Bearer", "expires_in": 3600,
                                  "id_token": id_token})

    def _bearer(self, request: web.Request) -> Person | None:
        auth = request.headers.get("Authorization", "")
        return self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None

    async def _userinfo(self, request: web.Request) -> web.Response:
        person = self._bearer(request)
        if person is None:
            return web.json_response({"error": "invalid_token"}, status=401)
        info: dict[str, Any] = {"sub": person.sub, "email": person.email, "name": person.name}
        if person.email_verified is not None:
            info["email_verified"] = person.email_verified
        return web.json_response(info)

    # ---- GitHub's flavour

    async def _github_token(self, request: web.Request) -> web.Response:
        grant, error = await self._redeem(request)
        if grant is None:            # GitHub answers 200 with an error for a bad or used code
            return web.json_response({"error": "bad_verification_code" if error == "invalid_grant" else error})
        access = secrets.token_urlsafe(24)
        self.tokens[access] = grant.person
        return web.json_response({"access_token": access, "token_type": "bearer", "scope": "read:user,user:email"})

    async def _github_user(self, request: web.Request) -> web.Response:
        person = self._bearer(request)
        if person is None:
            return web.json_response({"message": "Bad credentials"}, status=401)
        return web.json_response({"id": person.github_id, "login": person.sub, "name": person.name,
                                  "email": None})

    async def _github_emails(self, request: web.Request) -> web.Response:
        person = self._bearer(request)
        if person is None:
            return web.json_response({"message": "Bad credentials"}, status=401)
        emails = person.github_emails if person.github_emails is not None else [
            {"email": person.email, "primary": True, "verified": bool(person.email_verified), "visibility": None}]
        return web.json_response(emails)
