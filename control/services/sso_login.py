"""Signing a person in after an identity provider vouched for them (OAuth/OIDC and SAML share it).

The provider's flow (state, code, token checks, assertion checks) lives with each protocol; what
happens once a provider has said "this is <subject>, whose verified address is <email>" is here,
one way for every protocol, in one transaction with its audit row:

1. An identity already linked (provider, subject) signs in as its account.
2. Otherwise an account with that (verified) address is linked, but only if that account's own
   address was confirmed (or, for a workspace's IdP, it is already a member of that workspace).
   An unconfirmed local account may have been made by someone else with the victim's address
   (pre-account hijacking): it is never taken over by a sign-in, the person confirms the address
   (or resets the password) first: 403 ACCOUNT_NOT_VERIFIED.
3. Otherwise a new account (address verified, no password) is made, and it joins the newest open
   invitation for the address, else (server-wide providers only) a workspace of its own when
   `[auth] allow_signup` is on; else 403 SIGNUP_DISABLED.

The callers must only pass an address the provider says is verified. A workspace's own IdP
(`client_id` given) can assert any address: the caller must have checked that the address's
domain is one the workspace controls before calling this, since step 2 links by address.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from control.crypto import box_for
from control.errors import Conflict, Forbidden
from control.policy.access import Role
from control.services import audit
from control.services.accounts import AuthConfig, SignedIn, person, signed_in_json
from control.services.keys import create_client
from control.services.sessions import create_session
from control.services.users import add_member, create_user, parse_email
from control.settings import Settings
from control.store.queries import q

MAX_NAME = 200


class AccountNotVerified(Forbidden):
    code = "ACCOUNT_NOT_VERIFIED"


class SignupDisabled(Forbidden):
    code = "SIGNUP_DISABLED"


class NotAMember(Forbidden):
    code = "NOT_A_MEMBER"


async def sign_in_by_verified_email(pool: asyncpg.Pool, settings: Settings, *, email: str, name: str, method: str,
                                    provider: str, subject: str, client_id: uuid.UUID | None,
                                    ip: str | None, user_agent: str | None,
                                    join_role: Role | None = "viewer") -> SignedIn:
    """Link-or-create the account, start a session and record the "login" audit row (after:
    method, provider, newAccount, linked), all in one transaction.

    `client_id` None (Google, GitHub, OIDC): the session opens in the account's oldest workspace.
    `client_id` given (a workspace's SAML IdP): the session opens in that workspace; a person who
    is not a member joins it through their open invitation there (its role), else as `join_role`
    (None: refused, 403 NOT_A_MEMBER). `method` names the protocol ("oidc", "oauth", "saml"),
    `provider` the configured provider and `subject` its stable id of the person (both key the
    linked identity). Errors: 403 ACCOUNT_NOT_VERIFIED, SIGNUP_DISABLED or NOT_A_MEMBER, 403 when
    a server-wide sign-in finds no workspace for an existing account.
    """
    address = parse_email(email)
    cfg = AuthConfig.from_settings(settings)
    display = " ".join(name.split())[:MAX_NAME]
    for attempt in (1, 2):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await _sign_in(conn, settings, cfg, address, display, method, provider, subject, client_id,
                                      ip, user_agent, join_role)
        except Conflict:
            if attempt == 2:      # a concurrent first sign-in made the account; the retry finds it
                raise
    raise AssertionError("unreachable")


async def _sign_in(conn: asyncpg.Connection, settings: Settings, cfg: AuthConfig, email: str, name: str,
                   method: str, provider: str, subject: str, client_id: uuid.UUID | None, ip: str | None,
                   user_agent: str | None, join_role: Role | None) -> SignedIn:
    new_account = False
    user = await conn.fetchrow(q("sso_identity_user"), provider, subject)
    if user is None:
        user = await conn.fetchrow(q("sso_user_by_email_locked"), email)
        if user is not None and user["email_verified_at"] is None and not (
                client_id is not None and await conn.fetchrow(q("sso_membership"), client_id, user["id"])):
            raise AccountNotVerified(
                f"an account for {email} exists but its address was never confirmed; confirm it with the link "
                "mailed at sign-up (or reset the password), then sign in with single sign-on")
    if user is None:
        user = await create_user(conn, email, name=name, verified=True)
        new_account = True
    linked = bool(await conn.fetchval(q("sso_link_identity"), provider, subject, user["id"], email))

    where = await _workspace(conn, settings, cfg, user, client_id, ip, join_role, new_account)
    workspace_id, workspace_name, role = where
    session = await create_session(conn, workspace_id, user_id=user["id"], ip=ip, user_agent=user_agent,
                                   ttl_s=cfg.session_ttl_s)
    await audit.record(conn, person(workspace_id, user, role, ip), "login", "session", session.id,
                       after={"method": method, "provider": provider, "newAccount": new_account, "linked": linked})
    return SignedIn(session, signed_in_json(user, workspace_id, workspace_name, role))


async def _workspace(conn: asyncpg.Connection, settings: Settings, cfg: AuthConfig, user: Any,
                     client_id: uuid.UUID | None, ip: str | None, join_role: Role | None,
                     new_account: bool) -> tuple[uuid.UUID, str, Role]:
    """Where the session opens: the asked workspace, else the oldest membership; joining through an
    invitation, or making a workspace, when there is none."""
    if client_id is not None:
        member = await conn.fetchrow(q("sso_membership"), client_id, user["id"])
        if member is not None:
            return member["client_id"], member["workspace_name"], member["role"]
    elif not new_account:
        memberships = await conn.fetch(q("auth_memberships"), user["id"])
        if memberships:
            m = memberships[0]
            return m["client_id"], m["workspace_name"], m["role"]

    invite = await conn.fetchrow(q("sso_pending_invitation"), user["email"], client_id)
    if invite is not None:
        await add_member(conn, invite["client_id"], user["id"], invite["role"])
        await conn.execute(q("use_invitation"), invite["id"], user["id"])
        await audit.record(conn, person(invite["client_id"], user, invite["role"], ip), "accept", "invite",
                           invite["id"], None, {"userId": str(user["id"]), "email": user["email"],
                                                "role": invite["role"], "newAccount": new_account})
        return invite["client_id"], invite["workspace_name"], invite["role"]

    if client_id is not None:
        workspace = await conn.fetchrow(q("auth_workspace"), client_id)
        if workspace is None or join_role is None:
            raise NotAMember("you are not a member of this workspace; ask one of its admins for an invitation")
        await add_member(conn, client_id, user["id"], join_role)
        await audit.record(conn, person(client_id, user, join_role, ip), "create", "team_member", user["id"],
                           after={"email": user["email"], "role": join_role, "via": "sso"})
        return client_id, workspace["name"], join_role

    if not new_account:
        raise Forbidden("this account is not a member of any workspace")
    if not cfg.allow_signup:
        raise SignupDisabled("sign-up is turned off on this server; ask a workspace admin for an invitation")
    client = await create_client(conn, user["email"], box_for(settings.security["encryption_key"]))
    await add_member(conn, client["id"], user["id"], "admin")
    await audit.record(conn, person(client["id"], user, "admin", ip), "create", "workspace", client["id"],
                       after={"name": client["name"], "owner": user["email"], "via": "sso"})
    return client["id"], client["name"], "admin"
