"""The team, end to end in-process: people signed in by session cookie, invitations mailed through a
real SMTP server, roles enforced on the member's next request, the last admin kept, removal ending
sessions, other workspaces' ids answered 404."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from blacksheep import Content
from blacksheep.testing import TestClient

from control.policy.access import Role
from control.policy.passwords import hash_password
from control.services.keys import create_client
from control.services.sessions import create_session
from control.services.users import add_member, create_user
from control.settings import load_settings
from tests.support.server import free_port
from tests.support.smtp import SmtpServer, body_of, token_in

ORIGIN = "http://127.0.0.1:8000"        # the in-process test client's own origin (its Host header)
PASSWORD = "correct horse battery"


def at(local: str, domain: str = "acme.example") -> str:
    return f"{local}@{domain}"


ADA, BEN, CAROL, EDDIE, LATE, AGAIN, MEL, VERA = (at(n) for n in ("ada", "ben", "carol", "eddie", "late", "again",
                                                                   "mel", "vera"))
OLGA, IVAN = at("olga", "other.example"), at("ivan", "other.example")


@dataclass
class Site:
    """The real app in-process, its database and the SMTP server its mail goes to."""

    client: TestClient
    pool: Any
    smtp: SmtpServer
    origin: str

    async def call(self, method: str, path: str, body: Any = None, session: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        """As a browser would: the session cookie, and an Origin header on writes."""
        h: dict[str, str] = {}
        if session is not None:
            h["Cookie"] = f"mittr_session={session}"
        if method not in ("GET", "HEAD"):
            h["Origin"] = self.origin
        h.update(headers or {})
        kwargs: dict[str, Any] = {"headers": h}
        if method in ("POST", "PATCH", "PUT"):
            kwargs["content"] = Content(b"application/json", orjson.dumps(body if body is not None else {}))
        resp = await getattr(self.client, method.lower())(path, **kwargs)
        text = await resp.read()
        return resp.status, (orjson.loads(text) if text else None), resp

    async def workspace(self, name: str) -> uuid.UUID:
        row = await create_client(self.pool, name)
        return uuid.UUID(str(row["id"]))

    async def person(self, client_id: uuid.UUID, email: str, role: Role, password: str = PASSWORD) -> Person:
        """A member with an account and a signed-in session."""
        user = await create_user(self.pool, email, name=email.split("@")[0], password_hash=hash_password(password),
                                 verified=True)
        await add_member(self.pool, client_id, user["id"], role)
        session = await create_session(self.pool, client_id, user_id=user["id"])
        return Person(user["id"], email, session.token)

    async def invite(self, admin: Person, email: str, role: str) -> tuple[dict[str, Any], str]:
        """Invite; returns the invitation and the token from the mail that arrived."""
        before = len(self.smtp.inbox.to(email))
        status, body, _ = await self.call("POST", "/api/v1/team/invite", {"email": email, "role": role}, admin.session)
        assert status == 201, body
        mails = await self.smtp.inbox.wait_for(email, before + 1)
        return body, token_in(mails[-1])

    async def accept(self, token: str, password: str = PASSWORD, name: str = "New Person") -> tuple[int, Any, Any]:
        return await self.call("POST", "/auth/accept-invite", {"token": token, "name": name, "password": password})

    async def audit(self, client_id: uuid.UUID, action: str, resource: str) -> list[Any]:
        return list(await self.pool.fetch(
            "SELECT actor_id, resource_id, before::text AS before, after::text AS after FROM audit_logs"
            " WHERE client_id = $1 AND action = $2 AND resource = $3 ORDER BY created_at, id",
            client_id, action, resource))


@dataclass
class Person:
    id: uuid.UUID
    email: str
    session: str


def cookie_of(resp: Any) -> str:
    value = resp.get_first_header(b"set-cookie")
    assert value is not None, "no Set-Cookie"
    return str(value.decode())


def session_in(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float) -> float:
    """Seconds until `check` held; fails after `within_s`."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within_s, f"not within {within_s} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def smtp() -> Any:
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


def site_factory(db_url: str, pool: Any, smtp: SmtpServer) -> Callable[..., AbstractAsyncContextManager[Site]]:
    from api.app import create_app

    @asynccontextmanager
    async def make(public_url: str = "", **settings: str) -> AsyncIterator[Site]:
        env = {"DATABASE_URL": db_url, **smtp.env(), **settings}
        if public_url:
            env["MITTR_AUTH__PUBLIC_URL"] = public_url
        app = create_app(load_settings(env=env))
        await app.start()
        try:
            yield Site(TestClient(app), pool, smtp, public_url or ORIGIN)
        finally:
            await app.stop()
    return make


@pytest.fixture
async def site(db_url: str, pool: Any, smtp: SmtpServer) -> AsyncIterator[Site]:
    async with site_factory(db_url, pool, smtp)() as s:
        yield s


@pytest.fixture
async def acme(site: Site) -> tuple[uuid.UUID, Person]:
    """A workspace and its (only) admin."""
    client_id = await site.workspace("Acme")
    return client_id, await site.person(client_id, ADA, "admin")


async def test_invite_mail_status_accept_then_the_viewer_reads_but_cannot_write(
        site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, admin = acme
    invitation, token = await site.invite(admin, VERA, "viewer")
    assert invitation["email"] == VERA and invitation["role"] == "viewer"
    assert invitation["status"] == "pending" and "token" not in invitation
    mail = site.smtp.inbox.to(VERA)[-1]
    # Without auth.public_url, links point at the server's own listening address, never at the Host
    # header a request carried (see test_auth's reset-poisoning test).
    assert f"http://127.0.0.1:8400/accept-invite?token={token}" in body_of(mail) and "Acme" in str(mail["Subject"])
    assert token not in orjson.dumps(invitation).decode()

    status, listed, _ = await site.call("GET", "/api/v1/team", session=admin.session)
    assert status == 200, listed
    assert [m["email"] for m in listed["data"]] == [ADA]
    assert listed["data"][0]["role"] == "admin" and listed["pagination"] == {"hasMore": False, "cursor": None}
    assert [i["id"] for i in listed["invitations"]] == [invitation["id"]]

    status, seen, _ = await site.call("GET", f"/auth/invite-status?token={token}")
    assert status == 200, seen
    assert seen == {"email": VERA, "role": "viewer", "workspace": {"name": "Acme"},
                    "expiresAt": invitation["expiresAt"], "status": "pending", "existingAccount": False}

    status, joined, resp = await site.accept(token, name="Vera")
    assert status == 201, joined
    assert joined["role"] == "viewer" and joined["workspace"] == {"id": str(client_id), "name": "Acme"}
    assert joined["user"]["email"] == VERA and joined["user"]["name"] == "Vera"
    assert joined["user"]["emailVerified"] is True        # the link went to that address
    cookie = cookie_of(resp)
    attributes = {a.strip().split("=")[0] for a in cookie.split(";")[1:]}
    assert {"HttpOnly", "SameSite", "Path", "Max-Age"} <= attributes and "Secure" not in attributes
    assert "SameSite=Lax" in cookie and "Path=/" in cookie
    viewer = session_in(cookie)

    # The new member is signed in, reads, and is refused writes.
    status, listed, _ = await site.call("GET", "/api/v1/team", session=viewer)
    assert status == 200 and {m["email"]: m["role"] for m in listed["data"]} == {
        ADA: "admin", VERA: "viewer"}
    assert listed["invitations"] == []
    status, _, _ = await site.call("GET", "/api/v1/event-types", session=viewer)
    assert status == 200
    status, body, _ = await site.call("POST", "/api/v1/event-types", {"name": "order.created"}, viewer)
    assert status == 403 and body["code"] == "FORBIDDEN", body
    status, body, _ = await site.call("POST", "/api/v1/team/invite", {"email": at("x"), "role": "viewer"},
                                      viewer)
    assert status == 403 and body["code"] == "FORBIDDEN", body

    # The link is used up.
    status, seen, _ = await site.call("GET", f"/auth/invite-status?token={token}")
    assert status == 200 and seen["status"] == "accepted"
    status, body, _ = await site.accept(token, password="another good one")
    assert status == 400 and body["code"] == "BAD_REQUEST" and "used" in body["error"], body

    [invited] = await site.audit(client_id, "invite", "invite")
    assert invited["actor_id"] == admin.id and invited["resource_id"] == invitation["id"]
    [accepted] = await site.audit(client_id, "accept", "invite")
    assert accepted["actor_id"] == uuid.UUID(joined["user"]["id"]) and accepted["resource_id"] == invitation["id"]


async def test_an_editor_writes_deliveries_but_cannot_manage_the_team(
        site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    _, admin = acme
    _, token = await site.invite(admin, EDDIE, "editor")
    status, joined, resp = await site.accept(token)
    assert status == 201 and joined["role"] == "editor", joined
    editor = session_in(cookie_of(resp))
    status, body, _ = await site.call("POST", "/api/v1/event-types", {"name": "order.created"}, editor)
    assert status == 201, body
    status, team, _ = await site.call("GET", "/api/v1/team", session=editor)
    assert status == 200 and len(team["data"]) == 2
    for method, path, payload in (("POST", "/api/v1/team/invite", {"email": at("x"), "role": "viewer"}),
                                  ("PATCH", f"/api/v1/team/{admin.id}", {"role": "viewer"}),
                                  ("DELETE", f"/api/v1/team/{admin.id}", None)):
        status, body, _ = await site.call(method, path, payload, editor)
        assert status == 403 and body["code"] == "FORBIDDEN", (method, path, body)
    status, team, _ = await site.call("GET", "/api/v1/team", session=admin.session)
    assert {m["email"]: m["role"] for m in team["data"]}[ADA] == "admin"


async def test_an_existing_account_joins_with_its_own_password(db_url: str, pool: Any, smtp: SmtpServer) -> None:
    # Behind TLS at a proxy: links and the cookie follow auth.public_url.
    public = "https://mittr.example.com"
    async with site_factory(db_url, pool, smtp)(public) as site:
        acme = await site.workspace("Acme")
        admin = await site.person(acme, ADA, "admin")
        other = await site.workspace("Other")
        olga = await site.person(other, OLGA, "admin", password="olga's own password")

        _, token = await site.invite(admin, OLGA, "editor")
        assert f"{public}/accept-invite?token={token}" in body_of(smtp.inbox.to(OLGA)[-1])
        status, seen, _ = await site.call("GET", f"/auth/invite-status?token={token}")
        assert status == 200 and seen["existingAccount"] is True

        status, body, _ = await site.accept(token, password=PASSWORD, name="Someone Else")
        assert status == 401 and body["code"] == "UNAUTHORIZED", body
        status, seen, _ = await site.call("GET", f"/auth/invite-status?token={token}")
        assert seen["status"] == "pending", "a refused accept uses nothing up"

        status, joined, resp = await site.accept(token, password="olga's own password", name="Someone Else")
        assert status == 201, joined
        assert joined["user"]["id"] == str(olga.id) and joined["user"]["name"] == "olga", "the account stays as it was"
        cookie = cookie_of(resp)
        assert cookie.endswith("; Secure") and "HttpOnly" in cookie
        assert await pool.fetchval("SELECT count(*) FROM users WHERE email = $1", OLGA) == 1
        roles = {r["client_id"]: r["role"] for r in await pool.fetch(
            "SELECT client_id, role FROM memberships WHERE user_id = $1", olga.id)}
        assert roles == {other: "admin", acme: "editor"}
        # The new session acts in the inviting workspace.
        status, team, _ = await site.call("GET", "/api/v1/team", session=session_in(cookie))
        assert status == 200 and {m["email"] for m in team["data"]} == {ADA, OLGA}


async def test_reused_expired_unknown_revoked_and_replaced_tokens(site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, admin = acme
    _, expired = await site.invite(admin, LATE, "viewer")
    await site.pool.execute("UPDATE auth_tokens SET expires_at = now() - interval '1 minute' WHERE email = $1",
                            LATE)
    status, seen, _ = await site.call("GET", f"/auth/invite-status?token={expired}")
    assert status == 200 and seen["status"] == "expired"
    status, body, _ = await site.accept(expired)
    assert status == 400 and "expired" in body["error"], body
    _, team, _ = await site.call("GET", "/api/v1/team", session=admin.session)
    assert [(i["email"], i["status"]) for i in team["invitations"]] == [(LATE, "expired")]

    for bad in ("nonsense", "x" * 500, ""):
        status, body, _ = await site.call("GET", f"/auth/invite-status?token={bad}")
        assert status == 400 and body["code"] == "BAD_REQUEST", (bad, body)
        status, body, _ = await site.accept(bad)
        assert status == 400 and body["code"] == "BAD_REQUEST", (bad, body)

    # Inviting again replaces the link: the old one stops working, the invitation keeps its id.
    first, old = await site.invite(admin, AGAIN, "viewer")
    second, new = await site.invite(admin, AGAIN, "editor")
    assert first["id"] == second["id"] and second["role"] == "editor" and old != new
    status, _, _ = await site.call("GET", f"/auth/invite-status?token={old}")
    assert status == 400
    # Revoked: the link stops working; revoking twice is 404.
    status, _, _ = await site.call("DELETE", f"/api/v1/team/invites/{second['id']}", session=admin.session)
    assert status == 204
    status, body, _ = await site.accept(new)
    assert status == 400 and body["code"] == "BAD_REQUEST", body
    status, _, _ = await site.call("DELETE", f"/api/v1/team/invites/{second['id']}", session=admin.session)
    assert status == 404
    [revoked] = await site.audit(client_id, "revoke", "invite")
    assert revoked["resource_id"] == second["id"] and revoked["before"] is not None


async def test_invite_refusals(site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    _, admin = acme
    status, body, _ = await site.call("POST", "/api/v1/team/invite", {"email": ADA, "role": "viewer"},
                                      admin.session)
    assert status == 409 and body["code"] == "CONFLICT", body
    status, body, _ = await site.call("POST", "/api/v1/team/invite", {"email": at("x"), "role": "owner"},
                                      admin.session)
    assert status == 400 and "role" in body["error"], body
    status, body, _ = await site.call("POST", "/api/v1/team/invite", {"email": "not an address", "role": "viewer"},
                                      admin.session)
    assert status == 400 and "email" in body["error"], body
    assert site.smtp.inbox.messages == []
    # A page on another site cannot sign a browser in with an invitation (login CSRF).
    _, token = await site.invite(admin, CAROL, "viewer")
    status, body, _ = await site.call("POST", "/auth/accept-invite", {"token": token, "password": PASSWORD},
                                      headers={"Origin": "https://evil.example"})
    assert status == 403 and body["code"] == "FORBIDDEN", body


async def test_the_last_admin_cannot_be_demoted_or_removed(site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, admin = acme
    for method, payload in (("PATCH", {"role": "editor"}), ("DELETE", None)):
        status, body, _ = await site.call(method, f"/api/v1/team/{admin.id}", payload, admin.session)
        assert status == 409 and body["code"] == "INVALID_STATE", (method, body)
    status, body, _ = await site.call("PATCH", f"/api/v1/team/{admin.id}", {"role": "admin"}, admin.session)
    assert status == 200 and body["role"] == "admin", "staying admin is fine"

    second = await site.person(client_id, BEN, "editor")
    status, body, _ = await site.call("PATCH", f"/api/v1/team/{second.id}", {"role": "admin"}, admin.session)
    assert status == 200 and body["role"] == "admin" and body["email"] == BEN, body
    status, body, _ = await site.call("PATCH", f"/api/v1/team/{admin.id}", {"role": "viewer"}, admin.session)
    assert status == 200 and body["role"] == "viewer", "another admin remains"
    status, body, _ = await site.call("DELETE", f"/api/v1/team/{second.id}", None, second.session)
    assert status == 409 and body["code"] == "INVALID_STATE", body
    [change, _] = await site.audit(client_id, "update", "team_member")
    assert orjson.loads(change["before"]) == {"role": "editor"} and orjson.loads(change["after"]) == {"role": "admin"}


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
        site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, a = acme
    b = await site.person(client_id, BEN, "admin")
    for round_ in range(6):
        for p in (a, b):                # both signed in and cached: the race is in the database
            assert (await site.call("GET", "/api/v1/team", session=p.session))[0] == 200
        demote_b = site.call("PATCH" if round_ % 2 else "DELETE", f"/api/v1/team/{b.id}",
                             {"role": "viewer"} if round_ % 2 else None, a.session)
        demote_a = site.call("PATCH", f"/api/v1/team/{a.id}", {"role": "editor"}, b.session)
        results = await asyncio.gather(demote_b, demote_a)
        # The loser is refused: 409 INVALID_STATE, or 403 when its session already saw its demotion.
        statuses = sorted(r[0] for r in results)
        assert statuses[0] in (200, 204) and statuses[1] in (403, 409), [r[:2] for r in results]
        admins = await site.pool.fetch("SELECT user_id FROM memberships WHERE client_id = $1 AND role = 'admin'",
                                       client_id)
        assert len(admins) == 1, round_
        # Back to two admins for the next round.
        await site.pool.execute("DELETE FROM memberships WHERE client_id = $1 AND user_id = ANY($2::uuid[])",
                                client_id, [a.id, b.id])
        for p in (a, b):
            await add_member(site.pool, client_id, p.id, "admin")
            p.session = (await create_session(site.pool, client_id, user_id=p.id)).token


async def test_a_demotion_waits_for_a_concurrent_one_then_sees_it(site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    """Deterministic form of the race above: B is being demoted in an open transaction; demoting A
    must wait for it and then refuse, not count B as an admin still."""
    client_id, a = acme
    b = await site.person(client_id, BEN, "admin")
    async with site.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("UPDATE memberships SET role = 'editor' WHERE client_id = $1 AND user_id = $2",
                           client_id, b.id)
        demote_a = asyncio.ensure_future(site.call("PATCH", f"/api/v1/team/{a.id}", {"role": "viewer"}, a.session))
        await asyncio.sleep(0.5)
        assert not demote_a.done(), "the demotion must wait for the admins' locks"
        await tx.commit()
    status, body, _ = await demote_a
    assert status == 409 and body["code"] == "INVALID_STATE", body
    assert await site.pool.fetchval("SELECT role FROM memberships WHERE user_id = $1", a.id) == "admin"


async def test_removal_ends_the_members_sessions_here_within_a_second(
        site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, admin = acme
    editor = await site.person(client_id, EDDIE, "editor")
    elsewhere = await site.workspace("Elsewhere")
    await add_member(site.pool, elsewhere, editor.id, "viewer")
    other_session = (await create_session(site.pool, elsewhere, user_id=editor.id)).token
    status, _, _ = await site.call("GET", "/api/v1/team", session=editor.session)
    assert status == 200                                # cached as a member now

    status, _, _ = await site.call("DELETE", f"/api/v1/team/{editor.id}", session=admin.session)
    assert status == 204
    assert await site.pool.fetchval("SELECT revoked_at IS NOT NULL FROM sessions WHERE user_id = $1 AND client_id = $2",
                                    editor.id, client_id)

    async def refused() -> bool:
        return (await site.call("GET", "/api/v1/event-types", session=editor.session))[0] == 401
    await eventually(refused, within_s=2.5)              # the session cache holds a lookup for 1 s
    status, _, _ = await site.call("GET", "/api/v1/team", session=other_session)
    assert status == 200, "their membership and session elsewhere stay"
    assert await site.pool.fetchval("SELECT count(*) FROM users WHERE id = $1", editor.id) == 1
    status, team, _ = await site.call("GET", "/api/v1/team", session=admin.session)
    assert [m["email"] for m in team["data"]] == [ADA]
    [removed] = await site.audit(client_id, "delete", "team_member")
    assert removed["resource_id"] == str(editor.id) and removed["actor_id"] == admin.id


async def test_another_workspaces_ids_are_404(site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, admin = acme
    member = await site.person(client_id, MEL, "viewer")
    invitation, _ = await site.invite(admin, CAROL, "viewer")
    other = await site.workspace("Other")
    intruder = await site.person(other, IVAN, "admin")
    for method, path, payload in (("PATCH", f"/api/v1/team/{member.id}", {"role": "admin"}),
                                  ("DELETE", f"/api/v1/team/{member.id}", None),
                                  ("DELETE", f"/api/v1/team/invites/{invitation['id']}", None),
                                  ("PATCH", "/api/v1/team/not-a-uuid", {"role": "admin"}),
                                  ("DELETE", f"/api/v1/team/{uuid.uuid4()}", None)):
        status, body, _ = await site.call(method, path, payload, intruder.session)
        assert status == 404 and body["code"] == "NOT_FOUND", (method, path, body)
    status, team, _ = await site.call("GET", "/api/v1/team", session=intruder.session)
    assert [m["email"] for m in team["data"]] == [IVAN] and team["invitations"] == []
    assert await site.pool.fetchval("SELECT role FROM memberships WHERE user_id = $1", member.id) == "viewer"


async def test_members_are_paged_oldest_first(site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, admin = acme
    for i in range(4):
        await site.person(client_id, f"m{i}@acme.example", "viewer")
    seen: list[str] = []
    cursor = ""
    while True:
        status, body, _ = await site.call("GET", f"/api/v1/team?limit=2{cursor}", session=admin.session)
        assert status == 200, body
        seen += [m["email"] for m in body["data"]]
        if not body["pagination"]["hasMore"]:
            break
        cursor = f"&cursor={body['pagination']['cursor']}"
    assert seen == [ADA, *(f"m{i}@acme.example" for i in range(4))]


async def test_a_role_change_applies_to_the_members_next_requests(site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, admin = acme
    editor = await site.person(client_id, EDDIE, "editor")
    status, _, _ = await site.call("POST", "/api/v1/event-types", {"name": "a.one"}, editor.session)
    assert status == 201
    status, body, _ = await site.call("PATCH", f"/api/v1/team/{editor.id}", {"role": "viewer"}, admin.session)
    assert status == 200 and body["role"] == "viewer", body

    async def refused() -> bool:
        return (await site.call("POST", "/api/v1/event-types", {"name": f"a.{uuid.uuid4().hex}"},
                                editor.session))[0] == 403
    await eventually(refused, within_s=2.5)              # the session cache holds a lookup for 1 s


async def test_an_invitation_whose_mail_cannot_be_sent_is_not_created(db_url: str, pool: Any,
                                                                      smtp: SmtpServer) -> None:
    async with site_factory(db_url, pool, smtp)(MITTR_MAIL__SMTP_PORT=str(free_port())) as site:
        acme = await site.workspace("Acme")
        admin = await site.person(acme, ADA, "admin")
        status, body, resp = await site.call("POST", "/api/v1/team/invite", {"email": VERA, "role": "viewer"},
                                             admin.session)
        assert status == 503 and body["code"] == "UNAVAILABLE", body
        assert resp.get_first_header(b"retry-after") is not None
        assert await pool.fetchval("SELECT count(*) FROM auth_tokens WHERE kind = 'invite'") == 0
        assert await site.audit(acme, "invite", "invite") == []


async def test_two_accepts_of_one_link_at_once_make_one_member(site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    client_id, admin = acme
    _, token = await site.invite(admin, CAROL, "editor")
    results = await asyncio.gather(site.accept(token), site.accept(token))
    assert sorted(r[0] for r in results) == [201, 400], [r[:2] for r in results]
    assert await site.pool.fetchval("SELECT count(*) FROM users WHERE email = $1", CAROL) == 1
    assert await site.pool.fetchval("SELECT count(*) FROM memberships WHERE client_id = $1", client_id) == 2
    assert len(await site.audit(client_id, "accept", "invite")) == 1


async def test_a_deactivated_admin_shows_inactive_and_is_no_remaining_admin(
        site: Site, acme: tuple[uuid.UUID, Person]) -> None:
    """SCIM's active=false (memberships.deactivated_at): the team list says so, and such an admin,
    who cannot sign in, does not keep the workspace administered: the last active one stays."""
    client_id, admin = acme
    ben = await site.person(client_id, BEN, "admin")
    await site.pool.execute("UPDATE memberships SET deactivated_at = now() WHERE client_id = $1 AND user_id = $2",
                            client_id, ben.id)
    status, team, _ = await site.call("GET", "/api/v1/team", None, admin.session)
    assert status == 200, team
    by_email = {m["email"]: m for m in team["data"]}
    assert by_email[ADA]["active"] is True and by_email[ADA]["deactivatedAt"] is None
    assert by_email[BEN]["active"] is False and by_email[BEN]["deactivatedAt"] and by_email[BEN]["role"] == "admin"
    for method, payload in (("PATCH", {"role": "editor"}), ("DELETE", None)):
        status, body, _ = await site.call(method, f"/api/v1/team/{admin.id}", payload, admin.session)
        assert status == 409 and body["code"] == "INVALID_STATE" and "active admin" in body["error"], (method, body)
    # changing the deactivated admin takes no active admin away
    status, body, _ = await site.call("PATCH", f"/api/v1/team/{ben.id}", {"role": "viewer"}, admin.session)
    assert status == 200 and body["role"] == "viewer" and body["active"] is False, body
