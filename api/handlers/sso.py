"""Public single sign-on routes (OAuth 2.0 / OpenID Connect): the providers list, the redirect to a
provider, and the provider's redirect back, which sets the session cookie as /auth/login does.

The sign-in is bound to the browser that started it by the `mittr_sso` cookie (HttpOnly, SameSite=Lax
so that the provider's top-level redirect back carries it, Path=/auth/sso). Errors answer in the
API's shape; success redirects to `next` (a path on this server).
"""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.cookies import session_cookie, wants_secure
from api.handlers.auth import _client, _public_url, accounts, link_base
from api.http import json_response
from api.routing import ROUTES, route_id
from control.services.sso import BROWSER_COOKIE, SsoService

PROVIDERS: dict[str, Any] = {"type": "object", "required": ["providers"], "properties": {"providers": {
    "type": "array", "items": {"type": "object", "required": ["id", "name", "type", "loginUrl"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "type": {"type": "string", "enum": ["oidc", "oauth2"]},
        "loginUrl": {"type": "string"}}}}}}
_PARAM = {"type": "string", "maxLength": 2048}


def sso() -> SsoService:
    return ctx().service(SsoService)


def _query(request: Request, name: str) -> str | None:
    values = request.query.get(name)
    return values[0] if values else None


def _redirect(location: str, cookie: str) -> Response:
    return Response(302, [(b"Location", location.encode()), (b"Set-Cookie", cookie.encode()),
                          (b"Cache-Control", b"no-store"), (b"Referrer-Policy", b"no-referrer")], None)


@ROUTES.add("GET", "/auth/providers", "The single sign-on providers this server offers (public)", "auth", None,
            response=PROVIDERS)
async def providers(request: Request) -> Response:
    return json_response(sso().providers())


@ROUTES.add("GET", "/auth/sso/{provider}/login",
            "Start signing in with a provider: redirects the browser to it (state, PKCE, OIDC nonce)", "auth", None,
            302, query=(("next", {"type": "string", "maxLength": 2000}),),
            responses={400: "Invalid next (only a path on this server)", 404: "No such provider is configured",
                       429: "Too many sign-ins started from this address (see Retry-After)",
                       502: "The provider's discovery document could not be fetched"})
async def sso_login(request: Request) -> Response:
    name = route_id(request, "provider")
    if name in sso().cfg.providers:      # a start stores a state row: counted per client address (429)
        await accounts().take_sso_start(_client(request)[0])
    begun = await sso().begin(name, _query(request, "next"), link_base(request), request.cookies.get(BROWSER_COOKIE))
    secure = "; Secure" if wants_secure(request.scheme, _public_url()) else ""
    cookie = (f"{BROWSER_COOKIE}={begun.browser_token}; Max-Age={begun.max_age_s}; Path=/auth/sso; HttpOnly; "
              f"SameSite=Lax{secure}")
    return _redirect(begun.url, cookie)


@ROUTES.add("GET", "/auth/sso/{provider}/callback",
            "The provider's redirect back: signs in (sets mittr_session) and redirects to next", "auth", None, 302,
            query=(("code", _PARAM), ("state", _PARAM), ("error", _PARAM)),
            responses={400: "Missing, unknown, used (SSO_STATE_USED) or expired (SSO_STATE_EXPIRED) state, or a "
                            "sign-in started in another browser (SSO_STATE_INVALID)",
                       401: "The provider refused the code (SSO_CODE_REJECTED) or the sign-in (SSO_DENIED), or "
                            "the ID token failed a check (SSO_TOKEN_INVALID)",
                       403: "No verified e-mail address at the provider (EMAIL_NOT_VERIFIED), an unconfirmed "
                            "local account with that address (ACCOUNT_NOT_VERIFIED), sign-up turned off "
                            "(SIGNUP_DISABLED), or an account in no workspace",
                       404: "No such provider is configured",
                       502: "The provider could not be reached (SSO_PROVIDER_UNAVAILABLE)"})
async def sso_callback(request: Request) -> Response:
    params = {k: _query(request, k) for k in ("code", "state", "error")}
    ip, agent = _client(request)
    finished = await sso().finish(route_id(request, "provider"), params, request.cookies.get(BROWSER_COOKIE),
                                  link_base(request), ip, agent)
    cookie = session_cookie(finished.signed_in.session.token, int(accounts().cfg.session_ttl_s),
                            wants_secure(request.scheme, _public_url()))
    return _redirect(finished.next_path, cookie)
