"""SCIM v2 in-process against real Postgres: the token admin API (shown once, hashed, revocable,
admin only, plan-gated), bearer authentication, workspace isolation, filter and paging, the SCIM
error format and request bounds, role mapping, deactivation, and one audit row per change."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any
from urllib.parse import quote

import asyncpg
import orjson
import pytest
from blacksheep import Content

from control.services.keys import create_client, create_key
from control.services.sessions import create_session
from control.services.users import add_member, create_user
from tests.integration.conftest import Caller
from tests.integration.plans_support import plans_app  # noqa: F401 - fixture

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class Scim:
    """Calls /scim/v2 with a bearer token, as an IdP does."""

    def __init__(self, app: Caller, token: str) -> None:
        self.app, self.token = app, token

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None,
                   raw: bytes | None = None) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if raw is not None or body is not None:
            kwargs["content"] = Content(b"application/scim+json", raw if raw is not None else orjson.dumps(body))
        resp = await getattr(self.app.client, method.lower())("/scim/v2" + path, **kwargs)
        text = await resp.read()
        return resp.status, (orjson.loads(text) if text else None), resp

    async def create(self, user_name: str, email: str | None = None, **extra: Any) -> dict[str, Any]:
        body = {"schemas": [USER], "userName": user_name,
                "emails": [{"value": email or user_name, "primary": True}], **extra}
        status, made, _ = await self.call("POST", "/Users", body)
        assert status == 201, made
        return dict(made)

    async def patch(self, user_id: str, *operations: dict[str, Any]) -> tuple[int, Any]:
        status, body, _ = await self.call("PATCH", f"/Users/{user_id}", {"schemas": [PATCH],
                                                                         "Operations": list(operations)})
        return status, body


async def new_token(app: Caller, name: str = "okta", key: str | None = None) -> dict[str, Any]:
    status, made, _ = await app.call("POST", "/api/v1/scim/tokens", {"name": name}, key=key)
    assert status == 201, made
    return dict(made)


@pytest.fixture
async def scim(app_client: Caller) -> Scim:
    return Scim(app_client, (await new_token(app_client))["token"])


def is_scim_error(body: Any, status: int, scim_type: str | None = None) -> bool:
    return (body["schemas"] == [ERROR] and body["status"] == str(status)
            and body.get("scimType") == scim_type and bool(body.get("detail")))


async def audit_rows(pool: asyncpg.Pool, client_id: str, resource: str) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM audit_logs WHERE client_id = $1 AND resource = $2 ORDER BY id",
                                 uuid.UUID(client_id), resource))


# --- tokens -----------------------------------------------------------------------------------

async def test_a_token_is_shown_once_stored_hashed_and_revocable(app_client: Caller, pool: asyncpg.Pool) -> None:
    made = await new_token(app_client, "Okta production")
    raw = made["token"]
    assert raw.startswith("mtscim_") and made["prefix"] == raw[:len(made["prefix"])] and made["active"] is True
    assert made["scimBaseUrl"].endswith("/scim/v2")
    stored = await pool.fetchrow("SELECT token_hash, token_prefix FROM scim_tokens WHERE id = $1",
                                 uuid.UUID(made["id"]))
    assert bytes(stored["token_hash"]) == hashlib.sha256(raw.encode()).digest()
    status, listed, _ = await app_client.call("GET", "/api/v1/scim/tokens")
    assert status == 200 and [t["id"] for t in listed["data"]] == [made["id"]]
    assert "token" not in listed["data"][0] and raw not in orjson.dumps(listed).decode()

    scim = Scim(app_client, raw)
    assert (await scim.call("GET", "/Users"))[0] == 200
    status, used, _ = await app_client.call("GET", "/api/v1/scim/tokens")
    assert used["data"][0]["lastUsedAt"] is not None

    assert (await app_client.call("DELETE", f"/api/v1/scim/tokens/{made['id']}"))[0] == 204
    status, body, resp = await scim.call("GET", "/Users")
    assert status == 401 and is_scim_error(body, 401), body
    assert resp.headers.get_first(b"www-authenticate") is not None
    assert (await app_client.call("DELETE", f"/api/v1/scim/tokens/{made['id']}"))[0] == 204   # again: no-op
    status, listed, _ = await app_client.call("GET", "/api/v1/scim/tokens")
    assert listed["data"][0]["active"] is False and listed["data"][0]["revokedAt"] is not None
    actions = [(r["action"], r["resource_id"]) for r in await audit_rows(pool, app_client.client_id, "scim_token")]
    assert actions == [("create", made["id"]), ("revoke", made["id"])]


async def test_tokens_are_for_admins_and_stay_in_their_workspace(app_client: Caller, pool: asyncpg.Pool) -> None:
    made = await new_token(app_client)
    client_id = uuid.UUID(app_client.client_id)
    editor = await create_user(pool, f"editor-{uuid.uuid4().hex[:6]}@example.com")
    await add_member(pool, client_id, editor["id"], "editor")
    cookie = (await create_session(pool, client_id, user_id=editor["id"])).token
    resp = await app_client.client.get("/api/v1/scim/tokens", headers={"Cookie": f"mittr_session={cookie}"})
    assert resp.status == 403
    other = await create_client(pool, "tenant-b")
    other_key = (await create_key(pool, other["id"], "admin")).key
    status, body, _ = await app_client.call("DELETE", f"/api/v1/scim/tokens/{made['id']}", key=other_key)
    assert status == 404 and body["code"] == "NOT_FOUND"
    status, listed, _ = await app_client.call("GET", "/api/v1/scim/tokens", key=other_key)
    assert status == 200 and listed["data"] == []
    for bad in ({}, {"name": ""}, {"name": "x", "scopes": []}, {"name": 7}):
        status, body, _ = await app_client.call("POST", "/api/v1/scim/tokens", bad)
        assert status == 400, (bad, body)


async def test_scim_needs_the_plan_feature(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    made = await new_token(plans_app)
    await pool.execute("UPDATE clients SET plan_id = 'free' WHERE id = $1", uuid.UUID(plans_app.client_id))
    status, body, _ = await plans_app.call("POST", "/api/v1/scim/tokens", {"name": "x"})
    assert status == 402 and body["code"] == "FEATURE_NOT_IN_PLAN" and body["feature"] == "scim", body
    status, body, _ = await Scim(plans_app, made["token"]).call("GET", "/Users")
    assert status == 403 and is_scim_error(body, 403) and "scim" in body["detail"], body
    # Revoking is always allowed, so a workspace that moved to a smaller plan can clean up.
    assert (await plans_app.call("DELETE", f"/api/v1/scim/tokens/{made['id']}"))[0] == 204


# --- authentication and errors -----------------------------------------------------------------

@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer mtscim_unknown", "Basic abc", "Bearer " + "x" * 500])
async def test_requests_without_a_valid_token_get_a_scim_401(app_client: Caller, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    for path in ("/scim/v2/Users", "/scim/v2/ServiceProviderConfig", f"/scim/v2/Users/{uuid.uuid4()}"):
        resp = await app_client.client.get(path, headers=headers)
        body = orjson.loads(await resp.read())
        assert resp.status == 401 and is_scim_error(body, 401), (path, body)
        assert resp.content_type() == b"application/scim+json"


async def test_errors_and_bounds_speak_scim(scim: Scim) -> None:
    status, body, _ = await scim.call("GET", "/Users?filter=" + quote("userName eq"))
    assert status == 400 and is_scim_error(body, 400, "invalidFilter"), body
    status, body, _ = await scim.call("GET", "/Users?filter=" + quote('userName eq "' + "a" * 1000 + '"'))
    assert status == 400 and is_scim_error(body, 400, "invalidValue"), body
    status, body, _ = await scim.call("GET", "/Users?count=many")
    assert status == 400 and is_scim_error(body, 400, "invalidValue"), body
    status, body, _ = await scim.call("POST", "/Users", raw=b'{"schemas": ')
    assert status == 400 and is_scim_error(body, 400, "invalidSyntax"), body
    status, body, _ = await scim.call("POST", "/Users", raw=orjson.dumps({"schemas": [USER], "userName": "x" * 70000}))
    assert status == 413 and is_scim_error(body, 413), body
    status, body, _ = await scim.call("POST", "/Users", {"schemas": [USER], "userName": "no-mail",
                                                         "emails": [{"value": "not an address"}]})
    assert status == 400 and is_scim_error(body, 400, "invalidValue"), body
    status, body, _ = await scim.call("POST", "/Users", {"schemas": [USER], "userName": "r@example.com",
                                                         "emails": [{"value": "r@example.com"}],
                                                         "roles": [{"value": "owner"}]})
    assert status == 400 and is_scim_error(body, 400, "invalidValue") and "owner" in body["detail"], body
    status, body, _ = await scim.call("GET", f"/Users/{uuid.uuid4()}")
    assert status == 404 and is_scim_error(body, 404), body
    status, body, _ = await scim.call("GET", "/Users/not-a-uuid")
    assert status == 404 and is_scim_error(body, 404), body
    status, body, _ = await scim.call("GET", "/Groups")
    assert status == 404 and is_scim_error(body, 404), body
    status, body, resp = await scim.call("DELETE", "/Schemas")
    assert status == 405 and is_scim_error(body, 405) and resp.headers.get_first(b"allow") == b"GET", body


async def test_discovery_describes_what_is_served(scim: Scim) -> None:
    status, spc, _ = await scim.call("GET", "/ServiceProviderConfig")
    assert status == 200 and spc["patch"]["supported"] and spc["filter"] == {"supported": True, "maxResults": 100}
    assert spc["bulk"]["supported"] is False and spc["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    status, types, _ = await scim.call("GET", "/ResourceTypes")
    assert status == 200 and [t["id"] for t in types["Resources"]] == ["User"] and types["totalResults"] == 1
    assert (await scim.call("GET", "/ResourceTypes/User"))[1]["schema"] == USER
    status, schemas, _ = await scim.call("GET", "/Schemas")
    names = {a["name"] for a in schemas["Resources"][0]["attributes"]}
    assert names == {"userName", "name", "displayName", "active", "emails", "roles"}
    status, schema, _ = await scim.call("GET", f"/Schemas/{USER}")
    roles = next(a for a in schema["attributes"] if a["name"] == "roles")
    assert next(s for s in roles["subAttributes"] if s["name"] == "value")["canonicalValues"] == ["admin", "editor",
                                                                                                  "viewer"]
    assert (await scim.call("GET", "/Schemas/urn:example:nope"))[0] == 404


# --- users --------------------------------------------------------------------------------------

async def test_filter_and_paging(scim: Scim, app_client: Caller) -> None:
    made = [await scim.create(f"person{i}@filter.example") for i in range(5)]
    ids = [m["id"] for m in made]
    status, page, _ = await scim.call("GET", "/Users")
    # The API key's workspace has no member but these five.
    assert status == 200 and page["totalResults"] == 5 and [u["id"] for u in page["Resources"]] == ids
    status, page, _ = await scim.call("GET", "/Users?startIndex=2&count=2")
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 2, 2)
    assert [u["id"] for u in page["Resources"]] == ids[1:3]
    status, page, _ = await scim.call("GET", "/Users?startIndex=5&count=10")
    assert [u["id"] for u in page["Resources"]] == ids[4:] and page["totalResults"] == 5
    status, page, _ = await scim.call("GET", "/Users?startIndex=0&count=-3")   # RFC 7644: 1 and 0
    assert page["startIndex"] == 1 and page["itemsPerPage"] == 0 and page["totalResults"] == 5
    status, page, _ = await scim.call("GET", "/Users?count=1000")
    assert page["itemsPerPage"] == 5
    query = quote('userName eq "PERSON3@filter.example"')                       # caseExact false
    status, page, _ = await scim.call("GET", f"/Users?filter={query}")
    assert page["totalResults"] == 1 and page["Resources"][0]["id"] == ids[3]
    query = quote('userName eq "nobody@filter.example"')
    status, page, _ = await scim.call("GET", f"/Users?filter={query}")
    assert status == 200 and page["totalResults"] == 0 and page.get("Resources", []) == []
    query = quote('userName sw "person1" or userName sw "person2"')
    status, page, _ = await scim.call("GET", f"/Users?filter={query}&attributes=userName")
    assert [u["id"] for u in page["Resources"]] == ids[1:3]
    assert set(page["Resources"][0]) == {"schemas", "id", "userName"}
    status, page, _ = await scim.call("POST", "/Users/.search", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'emails.value co "filter.example"', "startIndex": 4, "count": 5})
    assert status == 200 and [u["id"] for u in page["Resources"]] == ids[3:], page


async def test_another_workspaces_members_are_404(scim: Scim, app_client: Caller, pool: asyncpg.Pool) -> None:
    mine = await scim.create("mine@iso.example")
    other = await create_client(pool, "tenant-b")
    other_key = (await create_key(pool, other["id"], "admin")).key
    theirs = Scim(app_client, (await new_token(app_client, "b", key=other_key))["token"])
    their_user = await theirs.create("theirs@iso.example")
    for method, body in (("GET", None), ("PUT", {"schemas": [USER], "userName": "x@iso.example",
                                                 "emails": [{"value": "x@iso.example"}]}),
                         ("PATCH", {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active",
                                                                         "value": False}]}),
                         ("DELETE", None)):
        status, answer, _ = await scim.call(method, f"/Users/{their_user['id']}", body)
        assert status == 404 and is_scim_error(answer, 404), (method, answer)
    status, page, _ = await scim.call("GET", "/Users")
    assert [u["id"] for u in page["Resources"]] == [mine["id"]]
    status, page, _ = await theirs.call("GET", "/Users?filter=" + quote('userName eq "mine@iso.example"'))
    assert page["totalResults"] == 0
    assert (await theirs.call("GET", f"/Users/{their_user['id']}"))[1]["active"] is True   # untouched


async def test_create_maps_roles_and_joins_existing_accounts(scim: Scim, app_client: Caller,
                                                             pool: asyncpg.Pool) -> None:
    client_id = uuid.UUID(app_client.client_id)
    plain = await scim.create("plain@roles.example", name={"givenName": "Pla", "familyName": "In"})
    editor = await scim.create("ed@roles.example", roles=[{"value": "Editor", "primary": True}])
    admin = await scim.create("ad@roles.example", roles=[{"value": "viewer"}, {"value": "admin", "primary": True}])
    roles = dict(await pool.fetch("SELECT user_id::text, role FROM memberships WHERE client_id = $1", client_id))
    assert (roles[plain["id"]], roles[editor["id"]], roles[admin["id"]]) == ("viewer", "editor", "admin")
    account = await pool.fetchrow("SELECT name, password_hash, email_verified_at FROM users WHERE id = $1",
                                  uuid.UUID(plain["id"]))
    assert account["name"] == "Pla In" and account["password_hash"] is None and account["email_verified_at"] is None
    # Someone with an account elsewhere joins; their account (name, other workspaces) is not touched.
    other = await create_client(pool, "elsewhere")
    known = await create_user(pool, "known@roles.example", name="Known Person")
    await add_member(pool, other["id"], known["id"], "admin")
    joined = await scim.create("K.Person", email="known@roles.example", displayName="IdP name")
    assert joined["id"] == str(known["id"]) and joined["userName"] == "K.Person"
    assert await pool.fetchval("SELECT name FROM users WHERE id = $1", known["id"]) == "Known Person"
    assert await pool.fetchval("SELECT role FROM memberships WHERE client_id = $1 AND user_id = $2",
                               other["id"], known["id"]) == "admin"
    # userName is unique in the workspace, and a member is provisioned once.
    status, body, _ = await scim.call("POST", "/Users", {"schemas": [USER], "userName": "k.person",
                                                         "emails": [{"value": "new@roles.example"}]})
    assert status == 409 and is_scim_error(body, 409, "uniqueness"), body
    status, body, _ = await scim.call("POST", "/Users", {"schemas": [USER], "userName": "again",
                                                         "emails": [{"value": "known@roles.example"}]})
    assert status == 409 and is_scim_error(body, 409, "uniqueness"), body


async def test_patch_deactivate_reactivate_and_delete_are_audited(scim: Scim, app_client: Caller,
                                                                  pool: asyncpg.Pool) -> None:
    client_id = uuid.UUID(app_client.client_id)
    user = await scim.create("audited@audit.example", roles=[{"value": "editor"}])
    user_id = uuid.UUID(user["id"])
    session = await create_session(pool, client_id, user_id=user_id)
    # Azure AD's style: capitalised op, a path, the boolean as a string.
    status, body = await scim.patch(user["id"], {"op": "Replace", "path": "active", "value": "False"})
    assert status == 200 and body["active"] is False, body
    assert await pool.fetchval("SELECT revoked_at IS NOT NULL FROM sessions WHERE id = $1", session.id)
    assert await pool.fetchval("SELECT count(*) FROM memberships WHERE client_id = $1 AND user_id = $2 AND "
                               "deactivated_at IS NOT NULL", client_id, user_id) == 1
    # Okta's style: no path, an object value.
    status, body = await scim.patch(user["id"], {"op": "replace", "value": {"active": True, "displayName": "Back"}})
    assert status == 200 and body["active"] is True and body["displayName"] == "Back", body
    status, body = await scim.patch(user["id"], {"op": "replace", "path": "roles", "value": [{"value": "admin"}]})
    assert status == 200 and body["roles"] == [{"value": "admin"}], body
    assert await pool.fetchval("SELECT role FROM memberships WHERE user_id = $1", user_id) == "admin"
    status, body = await scim.patch(user["id"], {"op": "remove", "path": "active"})
    assert status == 400 and is_scim_error(body, 400, "mutability"), body
    # PUT without `active` never reactivates: it keeps the state.
    await scim.patch(user["id"], {"op": "replace", "path": "active", "value": False})
    status, body, _ = await scim.call("PUT", f"/Users/{user['id']}", {
        "schemas": [USER], "userName": "renamed@audit.example", "emails": [{"value": "audited@audit.example"}]})
    assert status == 200 and body["active"] is False and body["userName"] == "renamed@audit.example", body
    assert await pool.fetchval("SELECT email FROM users WHERE id = $1", user_id) == "audited@audit.example"
    assert (await scim.call("DELETE", f"/Users/{user['id']}"))[0] == 204
    assert (await scim.call("GET", f"/Users/{user['id']}"))[0] == 404
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id) == 1   # the account stays
    rows = [r for r in await audit_rows(pool, app_client.client_id, "team_member") if r["resource_id"] == user["id"]]
    assert [r["action"] for r in rows] == ["create", "deactivate", "reactivate", "update", "deactivate",
                                           "update", "delete"]
    assert all(r["actor_type"] == "system" and r["actor_label"].startswith("scim:mtscim_") for r in rows)
    assert rows[1]["before"]["active"] is True and rows[1]["after"]["active"] is False
    assert rows[3]["after"]["role"] == "admin" and rows[-1]["before"]["userName"] == "renamed@audit.example"


async def test_an_idps_default_mappings_are_accepted(scim: Scim, pool: asyncpg.Pool) -> None:
    """Attributes Mittr does not keep (Entra's and Okta's defaults map several) are dropped, not
    refused; Entra's PATCH through a role filter that matches nothing yet adds the role."""
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    status, user, _ = await scim.call("POST", "/Users", {
        "schemas": [USER, enterprise], "userName": "entra@idp.example", "externalId": "0f3c-entra",
        "active": True, "title": "Engineer", "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
        "emails": [{"value": "entra@idp.example", "type": "work", "primary": True}],
        enterprise: {"department": "R&D"}})
    assert status == 201 and user["externalId"] == "0f3c-entra" and "title" not in user, user
    status, body = await scim.patch(user["id"], {"op": "Add", "path": 'roles[primary eq "True"].value',
                                                 "value": "editor"})
    assert status == 200 and body["roles"][0]["value"] == "editor", body
    assert await pool.fetchval("SELECT role FROM memberships WHERE user_id = $1", uuid.UUID(user["id"])) == "editor"
    status, page, _ = await scim.call("GET", "/Users?filter=" + quote('externalId eq "0f3c-entra"'))
    assert status == 200 and [u["id"] for u in page["Resources"]] == [user["id"]], page
