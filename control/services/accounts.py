"""Accounts: sign-up, log-in, e-mail verification, password reset, and browser sessions.

The pure part (reading the bodies, choosing the workspace a login lands in, the mails' text) comes
first; `AccountService` does the I/O. Each flow is one transaction with its audit row inside. Mail
goes out in the background after the commit, so a slow SMTP server neither holds a request nor,
for forgot-password, tells by its timing whether the account exists.

Choices (documented in the README, "Accounts and sessions"):
- an unverified person may log in; `emailVerified` says whether the address was confirmed;
- wrong password and unknown e-mail give one and the same 401, after the same work;
- a used, unknown or expired link answers 400 BAD_REQUEST "invalid or expired token";
- a password reset (the link proves the address, so it also marks it verified) signs the person
  out everywhere: every session of theirs is revoked.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from control.crypto import box_for
from control.errors import BadRequest, Forbidden, NotFound, RateLimited, Unauthorized, ValidationError
from control.jsonfmt import iso
from control.policy.access import Role
from control.policy.login_throttle import (
    ThrottleLimits,
    email_key,
    ip_key,
    retry_after,
    signup_key,
    sso_start_key,
    throttle_keys,
)
from control.policy.passwords import check_strength, verify_password
from control.policy.tokens import digest, new_token
from control.services import audit
from control.services.keys import create_client
from control.services.mail import SEND_TIMEOUT_S, Mailer, MailError
from control.services.principal import Principal
from control.services.saml_connections import PasswordLoginPolicy
from control.services.sessions import NewSession, create_session
from control.services.users import (
    add_member,
    create_user,
    hashed_password,
    parse_email,
    parse_role,
    user_by_email,
    user_json,
)
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object

log = logging.getLogger("mittr.accounts")

INVALID_LOGIN = "invalid e-mail address or password"
INVALID_TOKEN = "invalid or expired token"  # noqa: S105 - a message, not a secret
FORGOT_REPLY: dict[str, str] = {
    "message": "If an account exists for this address, a link to reset its password has been sent to it."}
RESET_REPLY: dict[str, str] = {"message": "Password changed. Every session was signed out; log in again."}
MAX_TOKEN_LENGTH = 200
MAX_LOGIN_PASSWORD = 1024           # longer than any password the rule accepts: cannot be right
MAX_COMPANY_NAME = 200
PRUNE_EVERY_S = 60.0
VERIFY_PATH, RESET_PATH = "/verify-email", "/reset-password"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The [auth] settings, in seconds."""
    public_url: str
    session_ttl_s: float
    verify_ttl_s: float
    reset_ttl_s: float
    invite_ttl_s: float
    throttle: ThrottleLimits
    allow_signup: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthConfig:
        a = settings.section("auth")
        return cls(str(a["public_url"]).strip(), float(a["session_ttl_hours"]) * 3600,
                   float(a["verify_email_ttl_hours"]) * 3600, float(a["reset_password_ttl_hours"]) * 3600,
                   float(a["invite_ttl_hours"]) * 3600,
                   ThrottleLimits(int(a["login_failures_per_email"]), int(a["login_failures_per_ip"]),
                                  float(a["login_window_s"])), bool(a["allow_signup"]))


# ---- pure: request bodies ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Signup:
    email: str
    password: str
    company: str


@dataclass(frozen=True, slots=True)
class Login:
    email: str
    password: str
    workspace_id: uuid.UUID | None


def parse_signup(body: Any) -> Signup:
    """`companyName` names the new workspace; without one the workspace is named after the e-mail
    address (onboarding can rename it)."""
    data = need_object(body)
    email = parse_email(data.get("email"))
    password = check_strength(data.get("password"), email, "password")
    company = data.get("companyName")
    if company is None:
        return Signup(email, password, email)
    if not isinstance(company, str) or not company.strip() or len(company) > MAX_COMPANY_NAME \
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in company):
        raise ValidationError(f"companyName: 1 to {MAX_COMPANY_NAME} printable characters")
    return Signup(email, password, company.strip())


def parse_login(body: Any) -> Login:
    data = need_object(body)
    email = parse_email(data.get("email"))
    password = data.get("password")
    if not isinstance(password, str) or not password or len(password) > MAX_LOGIN_PASSWORD:
        raise ValidationError("password: required, a string")
    raw_workspace = data.get("workspaceId")
    workspace_id = None
    if raw_workspace is not None:
        try:
            workspace_id = uuid.UUID(str(raw_workspace)) if isinstance(raw_workspace, str) else None
        except ValueError:
            workspace_id = None
        if workspace_id is None:
            raise ValidationError("workspaceId: a workspace id (UUID)")
    return Login(email, password, workspace_id)


def parse_token(body: Any, field: str = "token") -> str:
    value = need_object(body).get(field)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field}: required, a string")
    if len(value) > MAX_TOKEN_LENGTH:
        raise BadRequest(INVALID_TOKEN)
    return value


def parse_reset(body: Any) -> tuple[str, str]:
    """The token and the new password (its strength is checked against the account's address)."""
    token = parse_token(body)
    password = need_object(body).get("newPassword")
    if not isinstance(password, str):
        raise ValidationError("newPassword: required, a string")
    return token, password


def choose_membership(memberships: Sequence[Any], workspace_id: uuid.UUID | None) -> Any:
    """The asked workspace, else the oldest membership. Only reached with the right password."""
    if workspace_id is not None:
        for m in memberships:
            if m["client_id"] == workspace_id:
                return m
        raise NotFound("workspace not found")
    if not memberships:
        raise Forbidden("this account is not a member of any workspace")
    return memberships[0]


# ---- pure: mails and response shapes -------------------------------------------------------------

def link(base: str, path: str, token: str) -> str:
    return f"{base.rstrip('/')}{path}?token={token}"


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} hour{'' if hours == 1 else 's'}"


def verify_mail(url: str, ttl_s: float) -> tuple[str, str]:
    return ("Confirm your e-mail address for Mittr",
            f"Confirm your e-mail address by opening this link:\n\n{url}\n\n"
            f"The link works once and expires in {_hours(ttl_s)}. "
            "If you did not sign up for Mittr, ignore this mail.\n")


def reset_mail(url: str, ttl_s: float) -> tuple[str, str]:
    return ("Reset your Mittr password",
            f"Someone (hopefully you) asked to reset the password of your Mittr account.\n"
            f"Choose a new password here:\n\n{url}\n\n"
            f"The link works once and expires in {_hours(ttl_s)}. Setting a new password signs "
            "you out everywhere. If you did not ask for this, ignore this mail: your password stays as it is.\n")


def workspace_json(client_id: uuid.UUID, name: str) -> dict[str, Any]:
    return {"id": str(client_id), "name": name}


def signed_in_json(user: Any, client_id: uuid.UUID, workspace_name: str, role: Role) -> dict[str, Any]:
    return {"user": user_json(user), "workspace": workspace_json(client_id, workspace_name), "role": role}


def session_json(row: Any) -> dict[str, Any]:
    """A session as GET /auth/session shows it: a person with a role, or an API key with scopes."""
    key = None
    if row["key_id"] is not None:
        key = {"id": str(row["key_id"]), "name": row["key_name"], "keyPrefix": row["key_prefix"],
               "projectId": str(row["key_project_id"]) if row["key_project_id"] else None}
    return {
        "id": str(row["id"]),
        "user": user_json(row, "user_id") if row["user_id"] is not None and row["email"] is not None else None,
        "apiKey": key,
        "workspace": workspace_json(row["client_id"], row["workspace_name"]),
        "role": row["role"] if key is None else None,
        "scopes": (list(row["scopes"] or []) or ["*"]) if key is not None else None,
        "createdAt": iso(row["created_at"]),
        "expiresAt": iso(row["expires_at"]),
    }


def person(client_id: uuid.UUID, user: Any, role: Role | None, ip: str | None) -> Principal:
    """A person acting in a workspace (how the audit log names them)."""
    return Principal(client_id, None, frozenset(), None, user_id=user["id"], role=role, label=user["email"], ip=ip)


@dataclass(frozen=True, slots=True)
class SignedIn:
    session: NewSession
    body: dict[str, Any]


# ---- I/O -----------------------------------------------------------------------------------------

async def issue_token(conn: asyncpg.Connection | asyncpg.Pool, kind: str, user: Any, client_id: uuid.UUID | None,
                      ttl_s: float, prefix: str) -> str:
    """A new single-use e-mailed token; only its digest is stored. Returns the raw token."""
    raw = new_token(prefix)
    await conn.fetchrow(q("auth_insert_token"), digest(raw), kind, client_id, user["id"], user["email"],
                        float(ttl_s))
    return raw


async def audit_everywhere(conn: asyncpg.Connection, user: Any, action: str, ip: str | None,
                           after: Any = None) -> None:
    """A change to the person themself is recorded in each workspace they belong to."""
    for m in await conn.fetch(q("auth_memberships"), user["id"]):
        await audit.record(conn, person(m["client_id"], user, m["role"], ip), action, "user", user["id"],
                           after=after)


class AccountService:
    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        if settings is None:
            raise ValueError("AccountService needs the settings")
        self.pool = pool
        self.cfg = AuthConfig.from_settings(settings)
        self.mailer = Mailer(settings)
        self.box = box_for(settings.security["encryption_key"])
        self.password_policy = PasswordLoginPolicy(pool, settings)    # a workspace may require SSO
        self._tasks: set[asyncio.Task[None]] = set()
        self._pruned_at = 0.0

    # -- sign-up and log-in

    async def signup(self, body: Any, base: str, ip: str | None, user_agent: str | None) -> SignedIn:
        if not self.cfg.allow_signup:
            raise Forbidden("sign-up is turned off on this server; ask a workspace admin for an invitation")
        s = parse_signup(body)
        if ip and self.cfg.throttle.per_ip > 0:      # before the argon2 hash: a flood costs no CPU
            await self._take([signup_key(ip)], "too many sign-ups from this address; try again later")
        hashed = await hashed_password(s.password, s.email)
        async with self.pool.acquire() as conn, conn.transaction():
            client = await create_client(conn, s.company, self.box)
            user = await create_user(conn, s.email, password_hash=hashed)
            await add_member(conn, client["id"], user["id"], "admin")
            token = await issue_token(conn, "verify_email", user, client["id"], self.cfg.verify_ttl_s, "mtv_")
            session = await create_session(conn, client["id"], user_id=user["id"], ip=ip, user_agent=user_agent,
                                           ttl_s=self.cfg.session_ttl_s)
            await audit.record(conn, person(client["id"], user, "admin", ip), "create", "workspace", client["id"],
                               after={"name": s.company, "owner": s.email})
        self._spawn(self.mailer.send(s.email, *verify_mail(link(base, VERIFY_PATH, token), self.cfg.verify_ttl_s)))
        return SignedIn(session, signed_in_json(user, client["id"], client["name"], "admin"))

    async def login(self, body: Any, ip: str | None, user_agent: str | None) -> SignedIn:
        creds = parse_login(body)
        await self._take_attempt(creds.email, ip)
        user = await user_by_email(self.pool, creds.email)
        # The same work for an unknown address (verify_password checks a dummy hash) and one answer.
        ok = await asyncio.to_thread(verify_password, user["password_hash"] if user else None, creds.password)
        if not ok or user is None:
            raise Unauthorized(INVALID_LOGIN)
        await self.pool.execute(q("login_throttle_forgive"), email_key(creds.email), ip_key(ip) if ip else None)
        membership = choose_membership(await self.pool.fetch(q("auth_memberships"), user["id"]),
                                       creds.workspace_id)
        await self.password_policy.check(membership["client_id"])     # 403 SSO_REQUIRED
        async with self.pool.acquire() as conn, conn.transaction():
            session = await create_session(conn, membership["client_id"], user_id=user["id"], ip=ip,
                                           user_agent=user_agent, ttl_s=self.cfg.session_ttl_s)
            await audit.record(conn, person(membership["client_id"], user, membership["role"], ip), "login",
                               "session", session.id)
        return SignedIn(session, signed_in_json(user, membership["client_id"], membership["workspace_name"],
                                                membership["role"]))

    async def take_sso_start(self, ip: str | None) -> None:
        """Count a single sign-on start from this client address (each one stores a state row, so a
        flood would fill the table): 429 with Retry-After past the per-address login limit."""
        if ip and self.cfg.throttle.per_ip > 0:
            await self._take([sso_start_key(ip)], "too many sign-in attempts from this address; try again later")

    async def _take_attempt(self, email: str, ip: str | None) -> None:
        """Count the attempt before the password is checked; 429 once a counter is past its limit."""
        keys = throttle_keys(email, ip, self.cfg.throttle)
        if keys:
            await self._take(keys, "too many failed logins; try again later")

    async def _take(self, keys: list[str], refusal: str) -> None:
        """Count one attempt on each counter; 429 with Retry-After once one is past its limit."""
        limits = self.cfg.throttle
        rows = await self.pool.fetch(q("login_throttle_take"), keys, limits.window_s)
        self._prune_throttle_when_due()
        wait = retry_after([(r["key"], r["failures"], r["remaining_s"]) for r in rows], limits)
        if wait is not None:
            raise RateLimited(refusal, headers={"Retry-After": str(wait)})

    def _prune_throttle_when_due(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            self._spawn(self._prune_throttle())

    async def _prune_throttle(self) -> None:
        await self.pool.execute(q("login_throttle_prune"), self.cfg.throttle.window_s)

    # -- e-mailed links

    async def verify_email(self, body: Any, ip: str | None) -> dict[str, Any]:
        token = parse_token(body)
        async with self.pool.acquire() as conn, conn.transaction():
            used = await conn.fetchrow(q("auth_use_token"), digest(token), "verify_email")
            user = None if used is None else await conn.fetchrow(q("auth_verify_email"), used["user_id"],
                                                                  used["email"])
            if user is None:
                raise BadRequest(INVALID_TOKEN)
            await audit_everywhere(conn, user, "verify_email", ip, after={"emailVerified": True})
        return {"user": user_json(user)}

    def forgot_password(self, body: Any, base: str) -> dict[str, str]:
        """Answer at once, the same for every address; the lookup and the mail happen afterwards."""
        email = parse_email(need_object(body).get("email"))
        self._spawn(self._send_reset(email, base))
        return FORGOT_REPLY

    async def _send_reset(self, email: str, base: str) -> None:
        limits = self.cfg.throttle
        if limits.per_email > 0:     # no mailbox flooding: as many reset mails as failed logins
            rows = await self.pool.fetch(q("login_throttle_take"), [f"reset:{email}"], limits.window_s)
            if retry_after([(r["key"], r["failures"], r["remaining_s"]) for r in rows], limits) is not None:
                log.info("password reset mail not sent: too many for this address in the window")
                return
        user = await user_by_email(self.pool, email)
        if user is None:
            return
        token = await issue_token(self.pool, "reset_password", user, None, self.cfg.reset_ttl_s, "mtp_")
        await self.mailer.send(user["email"], *reset_mail(link(base, RESET_PATH, token), self.cfg.reset_ttl_s))

    async def reset_password(self, body: Any, ip: str | None) -> dict[str, str]:
        token, new_password = parse_reset(body)
        live = await self.pool.fetchrow(q("auth_peek_token"), digest(token), "reset_password")
        if live is None:
            raise BadRequest(INVALID_TOKEN)
        hashed = await hashed_password(new_password, live["email"], "newPassword")
        async with self.pool.acquire() as conn, conn.transaction():
            used = await conn.fetchrow(q("auth_use_token"), digest(token), "reset_password")
            user = None if used is None else await conn.fetchrow(q("auth_set_password"), used["user_id"],
                                                                  used["email"], hashed)
            if user is None:
                raise BadRequest(INVALID_TOKEN)
            await conn.execute(q("auth_retire_tokens"), user["id"], "reset_password")
            await conn.execute(q("revoke_user_sessions"), user["id"], None)
            await audit_everywhere(conn, user, "reset_password", ip)
        return RESET_REPLY

    # -- sessions

    async def session_from_key(self, who: Principal, ip: str | None, user_agent: str | None) -> SignedIn:
        """A browser session acting as an API key (its scopes, its project), for the dashboard."""
        async with self.pool.acquire() as conn, conn.transaction():
            session = await create_session(conn, who.client_id, key_id=who.key_id, ip=ip, user_agent=user_agent,
                                           ttl_s=self.cfg.session_ttl_s)
            await audit.record(conn, who.with_ip(ip), "login", "session", session.id)
        return SignedIn(session, await self.describe(session.id))

    async def describe(self, session_id: uuid.UUID | None) -> dict[str, Any]:
        row = await self.pool.fetchrow(q("auth_session"), session_id)
        if row is None:
            raise Unauthorized("missing or invalid session")
        return session_json(row)

    async def logout(self, who: Principal) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("revoke_session"), who.session_id)
            await audit.record(conn, who, "logout", "session", who.session_id)

    # -- background work

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except MailError:
            pass                                  # the mailer logged it (without the link)
        except Exception:
            log.exception("background account work failed")

    async def aclose(self) -> None:
        """Let mails being sent finish before the worker stops."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=SEND_TIMEOUT_S + 5)


# ---- `mittr users create` ------------------------------------------------------------------------

async def provision_member(conn: asyncpg.Connection, settings: Settings, email: object, role: object,
                           workspace_id: uuid.UUID | None, password: str | None, base: str) -> dict[str, Any]:
    """A person in a workspace, made by the operator: the address counts as verified. Without a
    password, a link to choose one (valid `auth.invite_ttl_hours`). An existing person keeps their
    account and gets (or changes to) the role; a password given replaces theirs and signs them out."""
    address, member_role = parse_email(email), parse_role(role)
    cfg = AuthConfig.from_settings(settings)
    hashed = await hashed_password(password, address) if password is not None else None
    async with conn.transaction():
        if workspace_id is not None:
            workspace = await conn.fetchrow(q("auth_workspace"), workspace_id)
            if workspace is None:
                raise NotFound(f"workspace {workspace_id} not found")
        else:
            workspace = await conn.fetchrow(q("first_client"))
            if workspace is None:
                workspace = await create_client(conn, "default", box_for(settings.security["encryption_key"]))
        user = await user_by_email(conn, address)
        if user is None:
            user = await create_user(conn, address, password_hash=hashed, verified=True)
        elif hashed is not None:
            user = await conn.fetchrow(q("auth_set_password"), user["id"], user["email"], hashed)
            await conn.execute(q("revoke_user_sessions"), user["id"], None)
        await add_member(conn, workspace["id"], user["id"], member_role)
        reset = None
        if password is None:
            token = await issue_token(conn, "reset_password", user, workspace["id"], cfg.invite_ttl_s, "mtp_")
            reset = link(base, RESET_PATH, token)
        system = Principal(workspace["id"], None, frozenset(), None, label="mittr users create")
        await audit.record(conn, system, "create", "team_member", user["id"],
                           after={"email": address, "role": member_role})
    return {**signed_in_json(user, workspace["id"], workspace["name"], member_role), "resetLink": reset,
            "resetLinkExpiresInHours": cfg.invite_ttl_s / 3600 if reset else None}
