"""SAML 2.0 per workspace, end to end against the in-process app and a real database: a pysaml2 IdP
made here (its own key and certificate) signs the responses posted to the ACS. Valid sign-in (the
session works), and refusals: unsigned, signed by another key, expired, wrong audience, wrong
recipient or destination, wrong InResponseTo, replayed (the same post, and the same assertion id in
a fresh response), a DOCTYPE (XXE), oversized. Plus the SP metadata as pysaml2 reads it, discovery,
require-SSO against password login, who may come in, the admin API and its isolation,
and the metadata URL fetch under the SSRF policy."""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import pytest
from aiohttp import web
from blacksheep import Content
from saml2 import BINDING_HTTP_POST, md
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID

from control.policy.ssrf import AddressPolicy
from control.policy.tokens import digest
from control.services.principal import Principal
from control.services.saml_connections import SamlConnections
from control.services.sessions import COOKIE
from control.services.users import add_member, create_user, hashed_password
from control.settings import load_settings
from tests.integration.conftest import Caller, new_workspace, running_app
from tests.support.saml_idp import SSO_URL, SamlIdp, request_id

PASSWORD = "correct horse battery staple 7"
ORIGIN = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
async def app(module_db_url: str, module_pool: Any) -> AsyncIterator[Caller]:
    async with running_app(module_db_url, module_pool) as caller:
        yield caller


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> SamlIdp:
    return SamlIdp.make(tmp_path_factory.mktemp("saml-idp"))


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class Sp:
    """One workspace with a SAML connection to the test IdP."""

    def __init__(self, app: Caller, ws: Caller, connection: dict[str, Any], idp: SamlIdp) -> None:
        self.app, self.ws, self.connection, self.idp = app, ws, connection, idp
        self.urls = connection["sp"]
        self.metadata = ""

    async def login(self, next_path: str = "/dashboard/endpoints") -> str:
        """Start a sign-in; the AuthnRequest's ID, as the IdP reads it from the redirect."""
        resp = await self.app.client.get(path_of(self.urls["loginUrl"]) + "?" + urlencode({"next": next_path}))
        await resp.read()
        assert resp.status == 303, resp.status
        location = resp.get_first_header(b"location").decode()
        assert location.startswith(SSO_URL + "?SAMLRequest=")
        return request_id(location)

    def answer(self, in_response_to: str, audience: str | None = None, **kw: Any) -> str:
        self.idp.trust(self.metadata)
        return self.idp.response(in_response_to=in_response_to, acs=self.urls["acsUrl"],
                                 audience=audience or self.urls["entityId"], **kw)

    async def post(self, saml_response: str) -> tuple[int, Any, Any]:
        body = urlencode({"SAMLResponse": saml_response, "RelayState": "/elsewhere"}).encode()
        resp = await self.app.client.post(path_of(self.urls["acsUrl"]),
                                          content=Content(b"application/x-www-form-urlencoded", body))
        text = await resp.read()
        return resp.status, (orjson.loads(text) if text else None), resp


async def make_sp(app: Caller, pool: Any, idp: SamlIdp, domains: list[str], **extra: Any) -> Sp:
    ws = await new_workspace(app, pool, f"ws-{uuid.uuid4().hex[:6]}")
    status, conn, _ = await ws.call("POST", "/api/v1/sso/saml", {
        "slug": "okta", "name": "Okta", "metadataXml": idp.metadata(), "emailDomains": domains, **extra})
    assert status == 201, conn
    sp = Sp(app, ws, conn, idp)
    resp = await app.client.get(path_of(conn["sp"]["metadataUrl"]))
    sp.metadata = (await resp.read()).decode()
    return sp


def session_token(resp: Any) -> str:
    cookie = resp.get_first_header(b"set-cookie").decode()
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    return cookie.split(";")[0].split("=", 1)[1]


async def sessions_of(pool: Any, client_id: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM sessions WHERE client_id = $1", uuid.UUID(client_id)))


async def test_a_signed_assertion_signs_in_and_the_session_works(app: Caller, module_pool: Any,
                                                                 idp: SamlIdp) -> None:
    sp = await make_sp(app, module_pool, idp, ["corp.example"], defaultRole="editor")
    rid = await sp.login("/dashboard/endpoints?x=1")
    status, body, resp = await sp.post(sp.answer(rid, email="alice@corp.example"))
    assert status == 303, body
    assert resp.get_first_header(b"location") == b"/dashboard/endpoints?x=1"     # ours, not the posted RelayState
    token = session_token(resp)
    who = await app.client.get("/auth/session", headers={"Cookie": f"{COOKIE}={token}"})
    me = orjson.loads(await who.read())
    assert who.status == 200 and me["user"]["email"] == "alice@corp.example" and me["role"] == "editor"
    assert me["workspace"]["id"] == sp.ws.client_id and me["user"]["emailVerified"]
    assert me["user"]["name"] == "Alice Example"
    login = await module_pool.fetchrow("SELECT after FROM audit_logs WHERE client_id = $1 AND action = 'login'",
                                       uuid.UUID(sp.ws.client_id))
    assert login is not None and login["after"]["method"] == "saml"
    assert login["after"]["provider"] == f"saml:{sp.connection['id']}" and login["after"]["newAccount"]
    from api.context import ctx
    from control.services.saml import SamlService
    assert not any(c.users.subjects() for c in ctx().service(SamlService)._clients.values()), "pysaml2's cache"
    # a second sign-in (new request) finds the same account and membership
    rid2 = await sp.login()
    status, _, resp = await sp.post(sp.answer(rid2, email="alice@corp.example"))
    assert status == 303 and resp.get_first_header(b"location") == b"/dashboard/endpoints"


async def test_a_signed_response_is_enough_and_names_come_from_okta_style_attributes(
        app: Caller, module_pool: Any, idp: SamlIdp) -> None:
    sp = await make_sp(app, module_pool, idp, ["okta.example"])
    rid = await sp.login("https://evil.example/phish")          # not a path here: the dashboard instead
    persistent = NameID(format=NAMEID_FORMAT_PERSISTENT, text="00u1abcd")
    status, body, resp = await sp.post(sp.answer(
        rid, sign="response", name_id=persistent,
        attributes={"email": ["Bob@Okta.example"], "firstName": ["Bob"], "lastName": ["Builder"]}))
    assert status == 303, body
    assert resp.get_first_header(b"location") == b"/dashboard/"
    user = await module_pool.fetchrow("SELECT u.name, i.subject FROM users u JOIN sso_identities i ON i.user_id = u.id"
                                      " WHERE u.email = 'bob@okta.example'")
    assert user["name"] == "Bob Builder" and user["subject"] == "00u1abcd"


@pytest.mark.parametrize(("case", "knobs", "why"), [
    ("unsigned", {"sign": "none"}, "signed"),
    ("expired", {"not_on_or_after": "2020-01-01T00:00:00Z"}, ""),
    ("wrong audience", {"audience_text": "https://other.example/sp"}, "Audience"),
    ("wrong recipient", {"recipient": "https://other.example/acs"}, "recipient"),
    ("entity id as recipient", {"recipient": "ENTITY_ID"}, "recipient"),     # pysaml2 alone would take it
    ("wrong destination", {"destination": "https://other.example/acs"}, "addressed"),
])
async def test_refused_responses(app: Caller, module_pool: Any, idp: SamlIdp, case: str, knobs: dict[str, Any],
                                 why: str) -> None:
    domain = f"{case.replace(' ', '-')}.example"
    sp = await make_sp(app, module_pool, idp, [domain])
    rid = await sp.login()
    if knobs.get("recipient") == "ENTITY_ID":
        knobs = {"recipient": sp.urls["entityId"]}
    status, body, resp = await sp.post(sp.answer(rid, email=f"eve@{domain}", **knobs))
    assert status == 401 and body["code"] == "SAML_RESPONSE_INVALID", (case, body)
    assert why.lower() in body["error"].lower(), body
    assert resp.get_first_header(b"set-cookie") is None
    assert await sessions_of(module_pool, sp.ws.client_id) == 0
    # the request is still open: the right answer to it signs in
    status, body, _ = await sp.post(sp.answer(rid, email=f"eve@{domain}"))
    assert status == 303, body


async def test_wrong_in_response_to_and_unsolicited_responses_are_refused(app: Caller, module_pool: Any,
                                                                          idp: SamlIdp) -> None:
    sp = await make_sp(app, module_pool, idp, ["irt.example"])
    await sp.login()
    for in_response_to in ("id-never-sent", ""):
        status, body, _ = await sp.post(sp.answer(in_response_to, email="mallory@irt.example"))
        assert status == 401 and body["code"] == "SAML_RESPONSE_INVALID", body
    other = await make_sp(app, module_pool, idp, ["irt-other.example"])
    rid_elsewhere = await other.login()                     # another connection's request
    status, body, _ = await sp.post(sp.answer(rid_elsewhere, email="mallory@irt.example"))
    assert status == 401 and body["code"] == "SAML_RESPONSE_INVALID", body
    assert await sessions_of(module_pool, sp.ws.client_id) == 0


async def test_a_replayed_response_or_assertion_is_refused(app: Caller, module_pool: Any, idp: SamlIdp) -> None:
    sp = await make_sp(app, module_pool, idp, ["replay.example"])
    rid = await sp.login()
    first = sp.answer(rid, email="carol@replay.example", assertion_id="id-assertion-once")
    status, _, _ = await sp.post(first)
    assert status == 303
    status, body, _ = await sp.post(first)                  # the very same post again
    assert status == 401 and body["code"] == "SAML_RESPONSE_INVALID", body
    rid2 = await sp.login()                                 # a fresh response carrying the used assertion id
    status, body, _ = await sp.post(sp.answer(rid2, email="carol@replay.example", assertion_id="id-assertion-once"))
    assert status == 401 and "used already" in body["error"], body
    assert await sessions_of(module_pool, sp.ws.client_id) == 1


async def test_another_key_a_doctype_and_an_oversized_post_are_refused(app: Caller, module_pool: Any, idp: SamlIdp,
                                                                       tmp_path: Path) -> None:
    sp = await make_sp(app, module_pool, idp, ["bad.example"])
    rid = await sp.login()
    impostor = SamlIdp.make(tmp_path, entity_id=idp.entity_id, name="impostor")   # same name, other key
    impostor.trust(sp.metadata)
    forged = impostor.response(in_response_to=rid, acs=sp.urls["acsUrl"], audience=sp.urls["entityId"],
                               email="eve@bad.example")
    status, body, _ = await sp.post(forged)
    assert status == 401 and body["code"] == "SAML_RESPONSE_INVALID", body
    xml = base64.b64decode(sp.answer(rid, email="eve@bad.example")).decode()
    body_start = xml.index("<ns0:Response")
    xxe = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           + xml[body_start:].replace("eve@bad.example", "&x;", 1))
    status, body, _ = await sp.post(base64.b64encode(xxe.encode()).decode())
    assert status == 401 and "document type" in body["error"], body
    status, body, _ = await sp.post("A" * 300_000)
    assert status == 413 and body["code"] == "PAYLOAD_TOO_LARGE", body
    assert await sessions_of(module_pool, sp.ws.client_id) == 0


async def test_who_may_come_in(app: Caller, module_pool: Any, idp: SamlIdp) -> None:
    """New accounts only in the connection's domains; an existing account only as a member (or
    with an invitation), never joined to the workspace just because the IdP names it."""
    sp = await make_sp(app, module_pool, idp, ["who.example"])
    outsider = await create_user(module_pool, "dave@elsewhere.example", verified=True)
    rid = await sp.login()
    status, body, _ = await sp.post(sp.answer(rid, email="dave@elsewhere.example"))
    assert status == 403 and body["code"] == "NOT_A_MEMBER", body
    rid = await sp.login()
    status, body, _ = await sp.post(sp.answer(rid, email="new@notours.example"))
    assert status == 403 and body["code"] == "NOT_A_MEMBER", body
    assert await module_pool.fetchval("SELECT count(*) FROM users WHERE email = 'new@notours.example'") == 0
    await add_member(module_pool, uuid.UUID(sp.ws.client_id), outsider["id"], "viewer")
    rid = await sp.login()
    status, body, _ = await sp.post(sp.answer(rid, email="dave@elsewhere.example"))
    assert status == 303, body


async def test_sp_metadata_is_saml_metadata_pysaml2_reads(app: Caller, module_pool: Any, idp: SamlIdp) -> None:
    sp = await make_sp(app, module_pool, idp, ["md.example"])
    resp = await app.client.get(path_of(sp.urls["metadataUrl"]))
    text = (await resp.read()).decode()
    assert resp.status == 200
    assert resp.get_first_header(b"content-type").startswith(b"application/samlmetadata+xml")
    descriptor = md.entity_descriptor_from_string(text)
    assert descriptor.entity_id == sp.urls["entityId"]
    acs = descriptor.spsso_descriptor[0].assertion_consumer_service
    assert [(a.binding, a.location) for a in acs] == [(BINDING_HTTP_POST, sp.urls["acsUrl"])]
    idp.trust(text)                                          # pysaml2's IdP loads it as an SP's metadata
    assert idp.server.metadata.assertion_consumer_service(sp.urls["entityId"], BINDING_HTTP_POST)
    for path in (f"/auth/sso/saml/{uuid.uuid4()}/okta/metadata", f"/auth/sso/saml/{sp.ws.client_id}/nope/metadata",
                 "/auth/sso/saml/not-a-uuid/okta/login"):
        resp = await app.client.get(path)
        await resp.read()
        assert resp.status == 404, path


async def test_discovery_answers_by_domain_alone(app: Caller, module_pool: Any, idp: SamlIdp) -> None:
    sp = await make_sp(app, module_pool, idp, ["disco.example"])
    await create_user(module_pool, "exists@disco.example", verified=True)

    async def discover(email: str) -> tuple[int, Any]:
        resp = await app.client.get("/auth/sso/discover?" + urlencode({"email": email}))
        return resp.status, orjson.loads(await resp.read())

    known, unknown = await discover("exists@disco.example"), await discover("nobody@disco.example")
    assert known == unknown == (200, {"sso": True, "method": "saml", "loginUrl": sp.urls["loginUrl"],
                                      "required": False})
    assert await discover("Exists@DISCO.example") == known
    await create_user(module_pool, "exists@plain.example", verified=True)
    assert await discover("exists@plain.example") == await discover("nobody@plain.example") == (200, {"sso": False})
    status, body = await discover("not-an-address")
    assert status == 400 and body["code"] == "VALIDATION_ERROR"


async def test_require_sso_refuses_password_login_of_members(app: Caller, module_pool: Any, idp: SamlIdp) -> None:
    sp = await make_sp(app, module_pool, idp, ["strict.example"])
    user = await create_user(module_pool, "pat@strict.example", verified=True,
                             password_hash=await hashed_password(PASSWORD, "pat@strict.example"))
    await add_member(module_pool, uuid.UUID(sp.ws.client_id), user["id"], "admin")

    async def login() -> tuple[int, Any]:
        status, body, _ = await app.call("POST", "/auth/login", {"email": "pat@strict.example", "password": PASSWORD},
                                         key="")
        return status, body

    assert (await login())[0] == 200
    status, conn, _ = await sp.ws.call("PATCH", f"/api/v1/sso/saml/{sp.connection['id']}", {"requireSso": True})
    assert status == 200 and conn["requireSso"] is True
    status, body = await login()
    assert status == 403 and body["code"] == "SSO_REQUIRED", body
    status, body, _ = await app.call("POST", "/auth/login", {"email": "pat@strict.example", "password": "wrong-one-1"},
                                     key="")
    assert status == 401, "a wrong password learns nothing about the workspace"
    rid = await sp.login()                                       # SSO still signs the member in
    status, body, _ = await sp.post(sp.answer(rid, email="pat@strict.example"))
    assert status == 303, body
    status, _, _ = await sp.ws.call("PATCH", f"/api/v1/sso/saml/{sp.connection['id']}", {"requireSso": False})
    assert (await login())[0] == 200


async def test_admin_api_crud_isolation_and_audit(app: Caller, module_pool: Any, idp: SamlIdp) -> None:
    ws = await new_workspace(app, module_pool, "crud")
    other = await new_workspace(app, module_pool, "crud-other")
    cert = idp.cert_file.read_text()
    status, made, _ = await ws.call("POST", "/api/v1/sso/saml", {
        "slug": "azure", "idpEntityId": "https://sts.windows.net/tenant/", "ssoUrl": "https://login.example/saml2",
        "certificates": [cert], "emailDomains": ["Crud.Example", "crud.example."], "defaultRole": "viewer"})
    assert status == 201, made
    assert made["emailDomains"] == ["crud.example"] and made["certificates"][0]["sha256"]
    assert made["sp"]["acsUrl"].endswith(f"/auth/sso/saml/{ws.client_id}/azure/acs")
    cid = made["id"]
    status, page, _ = await ws.call("GET", "/api/v1/sso/saml")
    assert status == 200 and [c["id"] for c in page["data"]] == [cid]
    status, body, _ = await ws.call("POST", "/api/v1/sso/saml", {"slug": "azure", "metadataXml": idp.metadata()})
    assert status == 409, body
    status, body, _ = await other.call("POST", "/api/v1/sso/saml", {"slug": "x", "metadataXml": idp.metadata(),
                                                                    "emailDomains": ["crud.example"]})
    assert status == 409 and "crud.example" in body["error"], body
    for bad in ({"slug": "Bad Slug", "metadataXml": idp.metadata()}, {"slug": "b"},
                {"slug": "b", "metadataXml": "<not-metadata/>"},
                {"slug": "b", "metadataXml": idp.metadata(), "metadataUrl": "https://idp.example/md"},
                {"slug": "b", "metadataXml": idp.metadata(), "defaultRole": "owner"},
                {"slug": "b", "metadataXml": idp.metadata(), "emailDomains": ["not a domain"]},
                {"slug": "b", "idpEntityId": "x", "ssoUrl": "https://x.example", "certificates": ["nope"]}):
        status, body, _ = await ws.call("POST", "/api/v1/sso/saml", bad)
        assert status == 400 and body["code"] in ("VALIDATION_ERROR", "BAD_REQUEST"), (bad, body)
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        status, answer, _ = await other.call(method, f"/api/v1/sso/saml/{cid}", body)
        assert status == 404 and answer["code"] == "NOT_FOUND", (method, answer)
    status, page, _ = await other.call("GET", "/api/v1/sso/saml")
    assert page["data"] == []
    status, changed, _ = await ws.call("PATCH", f"/api/v1/sso/saml/{cid}",
                                       {"metadataXml": idp.metadata(), "slug": "azure-ad", "emailDomains": []})
    assert status == 200, changed
    assert changed["idpEntityId"] == idp.entity_id and changed["slug"] == "azure-ad" and changed["emailDomains"] == []
    status, body, _ = await other.call("POST", "/api/v1/sso/saml", {"slug": "x", "metadataXml": idp.metadata(),
                                                                    "emailDomains": ["crud.example"]})
    assert status == 201, "the domain was released"
    status, _, _ = await ws.call("DELETE", f"/api/v1/sso/saml/{cid}")
    assert status == 204
    status, _, _ = await ws.call("GET", f"/api/v1/sso/saml/{cid}")
    assert status == 404
    rows = await module_pool.fetch("SELECT action, after, before FROM audit_logs WHERE client_id = $1 AND"
                                   " resource = 'saml_connection' ORDER BY created_at", uuid.UUID(ws.client_id))
    assert [r["action"] for r in rows] == ["create", "update", "delete"]
    assert "BEGIN CERTIFICATE" not in str(rows[0]["after"])


async def test_viewers_and_editors_may_not_manage_sso(app: Caller, module_pool: Any) -> None:
    from control.services.sessions import create_session
    ws = await new_workspace(app, module_pool, "roles")
    for role in ("viewer", "editor"):
        user = await create_user(module_pool, f"{role}-{uuid.uuid4().hex[:6]}@roles.example")
        await add_member(module_pool, uuid.UUID(ws.client_id), user["id"], role)
        token = (await create_session(module_pool, uuid.UUID(ws.client_id), user_id=user["id"])).token
        resp = await app.client.get("/api/v1/sso/saml", headers={"Cookie": f"{COOKIE}={token}"})
        await resp.read()
        assert resp.status == 403, role


@pytest.fixture
async def metadata_server(idp: SamlIdp) -> AsyncIterator[str]:
    async def serve(request: web.Request) -> web.Response:
        if request.path == "/redirect":
            raise web.HTTPFound("/metadata")
        if request.path == "/huge":
            return web.Response(body=b"<x>" + b" " * 2_000_000 + b"</x>")
        return web.Response(text=idp.metadata(), content_type="application/samlmetadata+xml")

    server = web.Server(serve)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]          # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_metadata_url_is_fetched_under_the_ssrf_policy(app: Caller, module_pool: Any, module_db_url: str,
                                                             metadata_server: str, idp: SamlIdp) -> None:
    ws = await new_workspace(app, module_pool, "fetch")
    status, body, _ = await ws.call("POST", "/api/v1/sso/saml", {"slug": "okta",
                                                                 "metadataUrl": metadata_server + "/metadata"})
    assert status == 400 and "internal range" in body["error"], body
    status, body, _ = await ws.call("POST", "/api/v1/sso/saml", {"slug": "okta",
                                                                 "metadataUrl": "http://localhost:1/metadata"})
    assert status == 400 and "internal range" in body["error"], body
    # A name (not a literal address) is judged on what it resolves to: this host's own name.
    port = urlsplit(metadata_server).port
    host = socket.gethostname()
    try:
        addresses = {i[4][0] for i in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError:
        addresses = set()
    if addresses and all(AddressPolicy().refusal(a) for a in addresses):
        status, body, _ = await ws.call("POST", "/api/v1/sso/saml", {
            "slug": "okta", "metadataUrl": f"http://{host}:{port}/metadata"})
        assert status == 400 and "could not be fetched" in body["error"] and "range" in body["error"], body
    # An operator who allows private networks (an IdP on the LAN) gets it fetched, bounded.
    settings = load_settings(env={"DATABASE_URL": module_db_url, "MITTR_ENGINE__ALLOW_PRIVATE_NETWORKS": "true"})
    service = SamlConnections(module_pool, 0, settings)
    who = Principal(uuid.UUID(ws.client_id), None, frozenset(), None, label="test")
    made = await service.create(who, {"slug": "okta", "metadataUrl": metadata_server + "/metadata"}, ORIGIN)
    assert made["idpEntityId"] == idp.entity_id and made["metadataUrl"] == metadata_server + "/metadata"
    from control.errors import BadRequest
    for path, why in (("/redirect", "HTTP 302"), ("/huge", "larger than")):
        with pytest.raises(BadRequest, match=why):
            await service.create(who, {"slug": "other", "metadataUrl": metadata_server + path}, ORIGIN)


async def test_require_sso_refuses_accepting_an_invitation_with_a_password(app: Caller, module_pool: Any,
                                                                            idp: SamlIdp) -> None:
    """POST /auth/accept-invite is a password sign-in too: refused (403 SSO_REQUIRED, before any
    password is looked at) for a workspace that requires SSO; the invitation stays open and the
    person's SSO sign-in takes it, with the invited role."""
    sp = await make_sp(app, module_pool, idp, ["invited.example"], requireSso=True)
    client_id = uuid.UUID(sp.ws.client_id)
    existing = await create_user(module_pool, "has@elsewhere.example", verified=True,
                                 password_hash=await hashed_password(PASSWORD, "has@elsewhere.example"))
    for email, password in (("new@elsewhere.example", PASSWORD), (existing["email"], PASSWORD),
                            (existing["email"], "not-the-password-1")):
        token = f"mti_accept-{uuid.uuid4().hex}"
        await module_pool.execute(
            "INSERT INTO auth_tokens (token_hash, kind, client_id, email, role, expires_at)"
            " VALUES ($1, 'invite', $2, $3, 'editor', now() + interval '1 day')"
            " ON CONFLICT (client_id, email) WHERE kind = 'invite' AND used_at IS NULL"
            " DO UPDATE SET token_hash = EXCLUDED.token_hash", digest(token), client_id, email)
        status, body, resp = await app.call("POST", "/auth/accept-invite",
                                            {"token": token, "name": "Invited", "password": password},
                                            {"Origin": ORIGIN}, key="")
        assert status == 403 and body["code"] == "SSO_REQUIRED", (email, body)
        assert "single sign-on" in body["error"] and "invitation stays open" in body["error"]
        assert resp.get_first_header(b"set-cookie") is None
    assert await module_pool.fetchval("SELECT count(*) FROM users WHERE email = 'new@elsewhere.example'") == 0
    assert await module_pool.fetchval("SELECT count(*) FROM memberships WHERE client_id = $1", client_id) == 0
    rid = await sp.login()                             # the way in: SSO, which takes the open invitation
    status, body, _ = await sp.post(sp.answer(rid, email="new@elsewhere.example"))
    assert status == 303, body
    role = await module_pool.fetchval("SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id"
                                      " WHERE m.client_id = $1 AND u.email = 'new@elsewhere.example'", client_id)
    assert role == "editor"
