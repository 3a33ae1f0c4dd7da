"""The team: members and roles, invitations, and the public pages' invitation routes."""

from __future__ import annotations

from typing import Any

from blacksheep import Request, Response

from api.context import ctx
from api.cookies import session_cookie, wants_secure
from api.handlers.auth import SIGNED_IN, USER, link_base, refuse_foreign_origin
from api.http import empty_response, header, json_response, query_one, read_json
from api.routes import list_of
from api.routing import PAGE, ROUTES, authed, route_id
from control.policy.access import ROLES
from control.services.principal import Principal
from control.services.team import TeamService
from control.validate import limit_param

ROLE = {"type": "string", "enum": list(ROLES)}
TIME = {"type": "string", "format": "date-time"}
UUID = {"type": "string", "format": "uuid"}
STRING = {"type": "string"}


def obj(props: dict[str, Any], *optional: str) -> dict[str, Any]:
    """An object schema whose properties are all required but the `optional` ones."""
    return {"type": "object", "required": [k for k in props if k not in optional], "properties": props}


MEMBER = ROUTES.component("TeamMember", obj({
    **USER["properties"], "role": ROLE, "joinedAt": TIME,
    "active": {"type": "boolean", "description": "false once SCIM deactivated the membership (active=false): "
                                                 "no sign-in, no session; the role is kept"},
    "deactivatedAt": {**TIME, "nullable": True}}))
INVITATION = ROUTES.component("Invitation", obj({
    "id": UUID, "email": STRING, "role": ROLE, "invitedAt": TIME, "expiresAt": TIME,
    "status": {"type": "string", "enum": ["pending", "expired"]}}))
TEAM = list_of(MEMBER)
TEAM = {**TEAM, "required": [*TEAM["required"], "invitations"],
        "properties": {**TEAM["properties"], "invitations": {"type": "array", "items": INVITATION}}}
ROLE_BODY = obj({"role": ROLE})
INVITE_BODY = obj({"email": {"type": "string", "format": "email", "maxLength": 254}, "role": ROLE})
STATUS = obj({"email": STRING, "role": ROLE, "workspace": obj({"name": STRING}), "expiresAt": TIME,
              "status": {"type": "string", "enum": ["pending", "accepted", "expired"]},
              "existingAccount": {"type": "boolean"}})
ACCEPT_BODY = obj({"token": {"type": "string", "minLength": 1, "maxLength": 200},
                   "name": {"type": "string", "maxLength": 200}, "password": {"type": "string", "minLength": 1}},
                  "name")


def team() -> TeamService:
    return ctx().service(TeamService)


def public_url() -> str:
    return str(ctx().settings.section("auth")["public_url"])


@ROUTES.add("GET", "/api/v1/team", "List the workspace's members (paged) and its open invitations", "team",
            "team:read", query=PAGE, response=TEAM)
@authed()
async def list_team(request: Request, who: Principal) -> Response:
    return json_response(await team().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                           query_one(request, "cursor")))


@ROUTES.add("POST", "/api/v1/team/invite", "Invite someone by e-mail (sends a single-use link)", "team",
            "team:write", 201, body=INVITE_BODY, response=INVITATION,
            responses={409: "Already a member, or too many open invitations",
                       503: "The invitation e-mail could not be sent (nothing was created)"})
@authed()
async def invite(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await team().invite(who, body, link_base(request)), 201)


@ROUTES.add("DELETE", "/api/v1/team/invites/{id}", "Revoke an open invitation (its link stops working)", "team",
            "team:write", 204)
@authed()
async def revoke_invitation(request: Request, who: Principal) -> Response:
    await team().revoke_invitation(who, route_id(request))
    return empty_response(204)


@ROUTES.add("PATCH", "/api/v1/team/{id}", "Change a member's role", "team", "team:write", body=ROLE_BODY,
            response=MEMBER, responses={409: "The workspace's last admin cannot be demoted"})
@authed()
async def change_role(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await team().change_role(who, route_id(request), body))


@ROUTES.add("DELETE", "/api/v1/team/{id}", "Remove a member (their sessions here end at once; the account stays)",
            "team", "team:write", 204, responses={409: "The workspace's last admin cannot be removed"})
@authed()
async def remove_member(request: Request, who: Principal) -> Response:
    await team().remove(who, route_id(request))
    return empty_response(204)


@ROUTES.add("GET", "/auth/invite-status", "Look at an invitation without accepting it", "auth", None,
            query=(("token", {"type": "string", "minLength": 1, "maxLength": 200}, True),), response=STATUS,
            responses={400: "Unknown, revoked or replaced invitation token"})
async def invite_status(request: Request) -> Response:
    return json_response(await team().status(query_one(request, "token")))


@ROUTES.add("POST", "/auth/accept-invite", "Accept an invitation: join the workspace and sign in", "auth", None,
            201, body=ACCEPT_BODY, response=SIGNED_IN,
            responses={400: "Invalid, used or expired token; weak password",
                       401: "Wrong password for the existing account", 403: "Sent from another site",
                       409: "Already a member"})
async def accept_invite(request: Request) -> Response:
    refuse_foreign_origin(request)               # no other site may sign a browser in (login CSRF)
    body: Any = await read_json(request, ctx().max_body)
    done = await team().accept(body, request.client_ip or None, header(request, b"user-agent"))
    ttl_s = int(float(ctx().settings.section("auth")["session_ttl_hours"]) * 3600)
    cookie = session_cookie(done.session.token, ttl_s, wants_secure(request.scheme, public_url()))
    return json_response(done.body, 201, {"Set-Cookie": cookie, "Cache-Control": "no-store"})
