"""The team: a workspace's members with their roles, and invitations to join it.

A member is a membership (a user and a role); an invitation is a single-use `invite` token whose
link is e-mailed, one open invitation per workspace and address. What each role may do is
control/policy/access.py's business; here the workspace always keeps an active admin (demotions
and removals check it while holding the workspace's active admin memberships locked, so two admins
demoting each other cannot both succeed; an admin SCIM deactivated does not count), and a removed
member's sessions in the workspace end with the removal's transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import asyncpg

from control.errors import ApiError, BadRequest, Conflict, InvalidState, NotFound, Unauthorized, ValidationError
from control.jsonfmt import decode_cursor, iso, page
from control.policy.access import Role
from control.policy.passwords import MAX_LENGTH, verify_password
from control.policy.tokens import digest, new_token
from control.services import audit
from control.services.accounts import MAX_TOKEN_LENGTH, SignedIn, link, person, signed_in_json
from control.services.mail import Mailer, MailError
from control.services.principal import Principal
from control.services.saml_connections import PasswordLoginPolicy
from control.services.sessions import create_session
from control.services.users import create_user, hashed_password, parse_email, parse_role, user_by_email, user_json
from control.settings import Settings
from control.store.queries import q
from control.validate import need_object, str_field, uuid_or_404

# Open (unaccepted) invitations a workspace may hold: the team list shows them all, unpaged.
MAX_OPEN_INVITATIONS = 500
ACCEPT_PATH = "/accept-invite"


# ---- pure rules -------------------------------------------------------------------------------

def invitation_status(used_at: datetime | None, expires_at: datetime, now: datetime) -> str:
    """`accepted`, `expired` or `pending`."""
    if used_at is not None:
        return "accepted"
    return "expired" if expires_at <= now else "pending"


def leaves_an_admin(admins: Collection[uuid.UUID], member: uuid.UUID, new_role: Role | None) -> bool:
    """Whether the workspace still has an admin after `member` becomes `new_role` (None: removed)."""
    return new_role == "admin" or any(a != member for a in admins)


def invitation_mail(workspace: str, inviter: str, role: Role, link: str, ttl_hours: float) -> tuple[str, str]:
    """Subject and text of the invitation e-mail."""
    by = f"{inviter} has invited you" if inviter else "You have been invited"
    hours = int(ttl_hours)
    valid = f"{hours // 24} days" if hours % 24 == 0 and hours >= 48 else f"{hours} hours"
    text = (f"{by} to join the workspace \"{workspace}\" on Mittr as {'an' if role == 'admin' else 'a'} "
            f"{role}.\n\nAccept the invitation here:\n{link}\n\n"
            f"The link works once and for {valid}. If you did not expect this invitation, ignore this mail.\n")
    return f"You are invited to {workspace} on Mittr", text


# ---- JSON shapes -------------------------------------------------------------------------------

def member_json(row: Any) -> dict[str, Any]:
    """`active` false (and `deactivatedAt`) for a membership SCIM deactivated: no sign-in, role kept."""
    return {**user_json(row), "role": row["role"], "joinedAt": iso(row["created_at"]),
            "active": row["deactivated_at"] is None, "deactivatedAt": iso(row["deactivated_at"])}


def invitation_json(row: Any, now: datetime) -> dict[str, Any]:
    return {"id": str(row["id"]), "email": row["email"], "role": row["role"], "invitedAt": iso(row["created_at"]),
            "expiresAt": iso(row["expires_at"]), "status": invitation_status(None, row["expires_at"], now)}


def _now() -> datetime:
    return datetime.now(UTC)


class TeamService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings) -> None:
        self.pool = pool
        self.auth: dict[str, Any] = settings.section("auth")
        self.mailer = Mailer(settings)
        self.password_policy = PasswordLoginPolicy(pool, settings)    # a workspace may require SSO

    # ---- members ------------------------------------------------------------------------------

    async def list(self, who: Principal, limit: int, cursor: str | None) -> dict[str, Any]:
        """A page of members (`data`, `pagination`) and every open invitation (`invitations`)."""
        after, after_id = decode_cursor(cursor)
        rows = await self.pool.fetch(q("team_members"), who.client_id, after, after_id, limit + 1)
        out = page([member_json(r) for r in rows], list(rows), limit)
        now = _now()
        invitations = await self.pool.fetch(q("team_invitations"), who.client_id)
        return {**out, "invitations": [invitation_json(r, now) for r in invitations]}

    async def change_role(self, who: Principal, member_id: str, body: Any) -> dict[str, Any]:
        role = parse_role(need_object(body).get("role"))
        user_id = uuid_or_404(member_id, "team member")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._lock_member(conn, who, user_id, role)
            if row["role"] == role:
                return member_json(row)
            await conn.execute(q("set_member_role"), who.client_id, user_id, role)
            await audit.record(conn, who, "update", "team_member", user_id, {"role": row["role"]}, {"role": role})
        return {**member_json(row), "role": role}

    async def remove(self, who: Principal, member_id: str) -> None:
        """End the membership and, at once, the person's sessions in this workspace; the account stays."""
        user_id = uuid_or_404(member_id, "team member")
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._lock_member(conn, who, user_id, None)
            await conn.execute(q("delete_membership"), who.client_id, user_id)
            await conn.execute(q("revoke_user_sessions"), user_id, who.client_id)
            await audit.record(conn, who, "delete", "team_member", user_id, member_json(row), None)

    async def _lock_member(self, conn: asyncpg.Connection, who: Principal, user_id: uuid.UUID,
                           new_role: Role | None) -> asyncpg.Record:
        """The member's row, locked after the workspace's active admins (always in that order: no
        deadlock); 409 INVALID_STATE when the change would take away the workspace's last active
        admin (a deactivated admin cannot sign in, so does not count; changing someone who is not an
        active admin takes no admin away)."""
        admins = {r["user_id"] for r in await conn.fetch(q("lock_workspace_admins"), who.client_id)}
        row = await conn.fetchrow(q("lock_member"), who.client_id, user_id)
        if row is None:
            raise NotFound("team member not found")
        if user_id in admins and not leaves_an_admin(admins, user_id, new_role):
            action = "removed" if new_role is None else "demoted"
            raise InvalidState(f"the last active admin of a workspace cannot be {action}; make another member "
                               "admin (or reactivate one) first")
        return row

    # ---- invitations --------------------------------------------------------------------------

    async def invite(self, who: Principal, body: Any, base: str) -> dict[str, Any]:
        """Create (or renew) the address's invitation and mail its link, in one transaction: when
        the mail cannot be handed over, nothing is created and the caller may retry."""
        body = need_object(body)
        email = parse_email(body.get("email"))
        role = parse_role(body.get("role"))
        ttl_hours = float(self.auth["invite_ttl_hours"])
        token = new_token("mti_")
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(q("member_by_email"), who.client_id, email) is not None:
                raise Conflict(f"{email} is already a member of this workspace")
            if await conn.fetchval(q("count_other_open_invitations"), who.client_id, email) >= MAX_OPEN_INVITATIONS:
                raise InvalidState(f"a workspace holds at most {MAX_OPEN_INVITATIONS} open invitations; "
                                   "revoke some first")
            row = await conn.fetchrow(q("upsert_invitation"), digest(token), who.client_id, email, role,
                                      who.user_id, ttl_hours * 3600)
            invitation = invitation_json(row, _now())
            await audit.record(conn, who, "invite", "invite", row["id"], None, invitation)
            workspace = await conn.fetchrow(q("get_client"), who.client_id)
            subject, text = invitation_mail(workspace["name"], who.label if who.user_id else "", role,
                                            link(base, ACCEPT_PATH, token), ttl_hours)
            try:
                await self.mailer.send(email, subject, text)
            except MailError as exc:
                raise ApiError("the invitation e-mail could not be sent; nothing was created, retry later",
                               code="UNAVAILABLE", status=503, headers={"Retry-After": "30"}) from exc
        return invitation

    async def revoke_invitation(self, who: Principal, invitation_id: str) -> None:
        """Withdraw an open invitation: its link stops working."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("delete_open_invitation"), uuid_or_404(invitation_id, "invitation"),
                                      who.client_id)
            if row is None:
                raise NotFound("invitation not found")
            await audit.record(conn, who, "revoke", "invite", row["id"], invitation_json(row, _now()), None)

    async def status(self, token: object) -> dict[str, Any]:
        """What the accept page shows before the person decides (nothing is used up)."""
        row = await self._by_token(self.pool, token)
        return {"email": row["email"], "role": row["role"], "workspace": {"name": row["workspace_name"]},
                "expiresAt": iso(row["expires_at"]),
                "status": invitation_status(row["used_at"], row["expires_at"], _now()),
                "existingAccount": row["account_exists"]}

    async def accept(self, body: Any, ip: str | None, user_agent: str | None) -> SignedIn:
        """Join the workspace: a new account (name, password), or an existing one proven by its
        password; the token is used up and a session starts, all in one transaction. A workspace
        that requires SSO refuses this password path (403 SSO_REQUIRED, before any password is
        looked at); its invitation stays open and is taken by the person's first SSO sign-in."""
        body = need_object(body)
        name = str_field(body.get("name", ""), "name", max_len=200).strip()
        password = body.get("password")
        if not isinstance(password, str):
            raise ValidationError("password: required, a string")
        async with self.pool.acquire() as conn, conn.transaction():
            invite = await self._by_token(conn, body.get("token"))
            state = invitation_status(invite["used_at"], invite["expires_at"], _now())
            if state != "pending":
                raise BadRequest(f"token: this invitation has {'been used' if state == 'accepted' else 'expired'}"
                                 "; ask for a new one")
            await self.password_policy.check(invite["client_id"], accepting=True)    # 403 SSO_REQUIRED
            email: str = invite["email"]
            existing = await user_by_email(conn, email)
            if existing is not None:
                matches = len(password) <= MAX_LENGTH and await asyncio.to_thread(
                    verify_password, existing["password_hash"], password)
                if not matches:
                    raise Unauthorized(f"password: an account for {email} exists; give its password to join")
                user_id = existing["id"]
            else:
                new = await create_user(conn, email, name=name, password_hash=await hashed_password(password, email))
                user_id = new["id"]
            client_id, role = invite["client_id"], invite["role"]
            if await conn.fetchval(q("add_member_if_absent"), client_id, user_id, role) is None:
                raise Conflict(f"{email} is already a member of this workspace")
            await conn.execute(q("use_invitation"), invite["id"], user_id)
            user = await conn.fetchrow(q("auth_verify_email"), user_id, email)   # the link reached it
            await audit.record(conn, person(client_id, user, role, ip), "accept", "invite", invite["id"], None,
                               {"userId": str(user_id), "email": email, "role": role,
                                "newAccount": existing is None})
            session = await create_session(conn, client_id, user_id=user_id, ip=ip, user_agent=user_agent,
                                           ttl_s=float(self.auth["session_ttl_hours"]) * 3600)
        return SignedIn(session, signed_in_json(user, client_id, invite["workspace_name"], role))

    @staticmethod
    async def _by_token(db: asyncpg.Pool | asyncpg.Connection, token: object) -> asyncpg.Record:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise BadRequest("token: required, the token from the invitation link")
        row = await db.fetchrow(q("invitation_by_token"), digest(token))
        if row is None:
            raise BadRequest("token: no such invitation (it may have been revoked or replaced by a newer one)")
        return row
