"""The public /auth/* routes: sign-up, log-in, e-mail verification, password reset, sessions.

None of them takes the `authed` path: they make sessions rather than need one. The routes that set
the cookie refuse a request whose Origin is another site (no logging a browser into someone else's
account); logout is a cookie write and needs our own Origin, like every cookie write.
"""

from __future__ import annotations

import logging
from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.cookies import cleared_cookie, session_cookie, wants_secure
from api.csrf import check_origin, origin_of
from api.http import empty_response, header, json_response, read_json
from api.routing import ROUTES
from control.errors import BadRequest, Unauthorized
from control.policy.passwords import COMMON, MAX_LENGTH, MIN_LENGTH
from control.services.accounts import MAX_COMPANY_NAME, MAX_LOGIN_PASSWORD, MAX_TOKEN_LENGTH, AccountService, SignedIn
from control.services.sessions import COOKIE
from control.services.users import EMAIL_RE

log = logging.getLogger("mittr.api")
_warned_host_links: list[bool] = []

_NULLABLE_STRING = {"type": "string", "nullable": True}
USER: dict[str, Any] = {"type": "object", "required": ["id", "email", "name", "emailVerified"], "properties": {
    "id": {"type": "string"}, "email": {"type": "string"}, "name": {"type": "string"},
    "emailVerified": {"type": "boolean"}}}
WORKSPACE: dict[str, Any] = {"type": "object", "required": ["id", "name"], "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}}}
SIGNED_IN: dict[str, Any] = {"type": "object", "required": ["user", "workspace", "role"], "properties": {
    "user": USER, "workspace": WORKSPACE, "role": {"type": "string", "enum": ["admin", "editor", "viewer"]}}}
SESSION: dict[str, Any] = {
    "type": "object", "required": ["id", "user", "apiKey", "workspace", "role", "scopes", "createdAt", "expiresAt"],
    "properties": {
        "id": {"type": "string"},
        "user": {**USER, "nullable": True},
        "apiKey": {"type": "object", "nullable": True, "required": ["id", "name", "keyPrefix", "projectId"],
                   "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                  "keyPrefix": {"type": "string"}, "projectId": _NULLABLE_STRING}},
        "workspace": WORKSPACE,
        "role": {"type": "string", "nullable": True, "enum": ["admin", "editor", "viewer", None]},
        "scopes": {"type": "array", "nullable": True, "items": {"type": "string"}},
        "createdAt": {"type": "string"},
        "expiresAt": {"type": "string"}}}
MESSAGE: dict[str, Any] = {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}
# What control/services/users.parse_email, accounts.parse_token and passwords.check_strength check.
_EMAIL = {"type": "string", "maxLength": 254, "pattern": EMAIL_RE.pattern, "example": "alice@example.com"}
_TOKEN = {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_LENGTH}
NEW_PASSWORD: dict[str, Any] = {
    "type": "string", "minLength": MIN_LENGTH, "maxLength": MAX_LENGTH, "pattern": "^(?!(.)\\1*$)",
    "not": {"enum": sorted(COMMON)}, "example": "correct-horse-battery",
    "description": "not one character repeated, not a common password (in any case), not the e-mail address "
                   "or its name part"}


def accounts() -> AccountService:
    return ctx().service(AccountService)


def _public_url() -> str:
    return str(ctx().settings.section("auth")["public_url"]).strip()


def refuse_foreign_origin(request: Request) -> None:
    """A browser names the page that sent a POST (Origin, else Referer): another site's page must not
    get a browser a session of its choosing (login CSRF). Scripts send neither and are not affected."""
    if header(request, b"origin") or header(request, b"referer"):
        check_origin(request, _public_url())


def link_base(request: Request) -> str:
    """Where e-mailed links point: `auth.public_url`'s origin, else the address this server listens
    on. Never the request's Host header: anyone may send a password-reset request with a Host of
    their choosing, and the victim's mail would then carry the token to the attacker's site."""
    public = _public_url()
    if public:
        origin = origin_of(public)
        if origin is None:
            raise BadRequest("auth.public_url: not an http(s) URL; e-mailed links cannot be built")
        return origin
    if not _warned_host_links:
        _warned_host_links.append(True)
        log.warning("auth.public_url is not set: e-mailed links point at server.host:server.port")
    server = ctx().settings.server
    host = str(server["host"])
    host = "localhost" if host in ("0.0.0.0", "::", "") else host
    return origin_of(f"http://{host}:{int(server['port'])}") or f"http://localhost:{int(server['port'])}"


def _client(request: Request) -> tuple[str | None, str | None]:
    return request.client_ip or None, header(request, b"user-agent")


def _max_age() -> int:
    return int(accounts().cfg.session_ttl_s)


def _with_cookie(request: Request, signed_in: SignedIn, status: int) -> Response:
    cookie = session_cookie(signed_in.session.token, _max_age(), wants_secure(request.scheme, _public_url()))
    return json_response(signed_in.body, status, {"Set-Cookie": cookie, "Cache-Control": "no-store"})


def _session_token(request: Request) -> str:
    raw = request.cookies.get(COOKIE)
    if not raw:
        raise Unauthorized("missing or invalid session")
    return raw


@ROUTES.add("POST", "/auth/signup", "Sign up: a new workspace, its first admin, and a session", "auth", None, 201,
            body={"type": "object", "required": ["email", "password"], "properties": {
                "email": _EMAIL, "password": NEW_PASSWORD,
                "companyName": {"type": "string", "minLength": 1, "maxLength": MAX_COMPANY_NAME, "example": "Acme",
                                "pattern": "^[^\\x00-\\x1f\\x7f]*[^\\s\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*$"}}},
            responses={403: "Sent from another site (Origin or Referer)",
                       409: "An account with this e-mail address already exists"},
            response=SIGNED_IN)
async def signup(request: Request) -> Response:
    refuse_foreign_origin(request)
    body = await read_json(request, ctx().max_body)
    ip, agent = _client(request)
    return _with_cookie(request, await accounts().signup(body, link_base(request), ip, agent), 201)


@ROUTES.add("POST", "/auth/login", "Log in with e-mail and password (sets the mittr_session cookie)", "auth", None,
            body={"type": "object", "required": ["email", "password"], "properties": {
                "email": _EMAIL, "password": {"type": "string", "minLength": 1, "maxLength": MAX_LOGIN_PASSWORD},
                "workspaceId": {"type": "string", "format": "uuid"}}},
            responses={401: "Wrong e-mail address or password (one answer for both)",
                       403: "Sent from another site, or the account belongs to no workspace",
                       404: "Not a member of the workspace asked for",
                       429: "Too many failed logins for this address or from this client (see Retry-After)"},
            response=SIGNED_IN)
async def login(request: Request) -> Response:
    refuse_foreign_origin(request)
    body = await read_json(request, ctx().max_body)
    ip, agent = _client(request)
    return _with_cookie(request, await accounts().login(body, ip, agent), 200)


@ROUTES.add("POST", "/auth/verify-email", "Confirm an e-mail address with the token from the mail", "auth", None,
            body={"type": "object", "required": ["token"], "properties": {"token": _TOKEN}},
            responses={400: "Invalid request, or an invalid, used or expired token"},
            response={"type": "object", "required": ["user"], "properties": {"user": USER}})
async def verify_email(request: Request) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await accounts().verify_email(body, request.client_ip or None))


@ROUTES.add("POST", "/auth/forgot-password", "Mail a password reset link (the same answer for every address)",
            "auth", None, body={"type": "object", "required": ["email"], "properties": {"email": _EMAIL}},
            response=MESSAGE)
async def forgot_password(request: Request) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(accounts().forgot_password(body, link_base(request)))


@ROUTES.add("POST", "/auth/reset-password", "Set a new password with the token from the mail; signs out everywhere",
            "auth", None,
            body={"type": "object", "required": ["token", "newPassword"], "properties": {
                "token": _TOKEN, "newPassword": NEW_PASSWORD}},
            responses={400: "Invalid request, a weak password, or an invalid, used or expired token"},
            response=MESSAGE)
async def reset_password(request: Request) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await accounts().reset_password(body, request.client_ip or None))


@ROUTES.add("POST", "/auth/session", "Make a browser session from the API key in X-API-Key (acts with its scopes)",
            "auth", None, 201, headers=(("X-API-Key", True),),
            responses={401: "Missing or invalid API key", 403: "Sent from another site (Origin or Referer)"},
            response=SESSION)
async def create_session_from_key(request: Request) -> Response:
    refuse_foreign_origin(request)
    who = await ctx().auth.authenticate(header(request, b"x-api-key"))
    ip, agent = _client(request)
    return _with_cookie(request, await accounts().session_from_key(who, ip, agent), 201)


@ROUTES.add("GET", "/auth/session", "The current session (mittr_session cookie): who, workspace, rights, expiry",
            "auth", None, responses={401: "No valid session"}, response=SESSION)
async def current_session(request: Request) -> Response:
    who = await ctx().sessions.authenticate(_session_token(request))
    return json_response(await accounts().describe(who.session_id), headers={"Cache-Control": "no-store"})


@ROUTES.add("DELETE", "/auth/session", "Log out: revoke the current session and clear the cookie", "auth", None, 204,
            responses={401: "No valid session", 403: "Cross-site request (missing or foreign Origin)"})
async def logout(request: Request) -> Response:
    raw = _session_token(request)
    sessions = ctx().sessions
    try:
        who = await sessions.authenticate(raw)
    except Unauthorized as exc:
        exc.headers = {**exc.headers, "Set-Cookie": cleared_cookie(wants_secure(request.scheme, _public_url()))}
        raise
    check_origin(request, _public_url())
    await accounts().logout(who.with_ip(request.client_ip or None))
    sessions.forget(raw)
    response = empty_response(204)
    response.add_header(b"Set-Cookie", cleared_cookie(wants_secure(request.scheme, _public_url())).encode())
    return response
