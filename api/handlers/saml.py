"""SAML 2.0 single sign-on per workspace (docs/saml.md): the admin API for connections
(/api/v1/sso/saml, family `sso`, admins only, plan feature `saml`), the public SP routes under
/auth/sso/saml/{clientID}/{slug}/ (login, metadata, acs) and discovery by e-mail address."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from blacksheep import Content, Request, Response

from api.context import ctx
from api.cookies import session_cookie, wants_secure
from api.handlers.auth import _client, _public_url, accounts, link_base
from api.http import empty_response, json_response, query_one, read_body, read_json
from api.routes import list_of, nullable
from api.routing import PAGE, ROUTES, authed, route_id
from control.errors import BadRequest
from control.policy.saml import DOMAIN_RE, SLUG_RE
from control.services.principal import Principal
from control.services.saml import SamlService
from control.services.saml_connections import SamlConnections
from control.services.users import EMAIL_RE
from control.validate import limit_param

_STR: dict[str, Any] = {"type": "string"}
_ROLE = {"type": "string", "enum": ["admin", "editor", "viewer"]}
BODY: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {
    "slug": {"type": "string", "pattern": SLUG_RE.pattern, "example": "okta",
             "description": "names the connection in its URLs; unique in the workspace"},
    "name": {"type": "string", "maxLength": 200, "example": "Okta"},
    "metadataXml": {"type": "string", "minLength": 1,
                    "description": "the IdP's SAML metadata document (one of the three sources)"},
    "metadataUrl": {"type": "string", "maxLength": 2048, "example": "https://acme.okta.com/app/abc/sso/saml/metadata",
                    "description": "fetched now (and again whenever a PATCH gives it)"},
    "idpEntityId": {"type": "string", "maxLength": 1024, "description": "with ssoUrl and certificates: no metadata"},
    "ssoUrl": {"type": "string", "maxLength": 2048, "description": "the IdP's HTTP-Redirect sign-on URL"},
    "certificates": {"type": "array", "minItems": 1, "maxItems": 5, "items": _STR,
                     "description": "the IdP's signing certificates, PEM"},
    "emailDomains": {"type": "array", "maxItems": 50, "example": ["acme.com"],
                     "items": {"type": "string", "maxLength": 253, "pattern": DOMAIN_RE.pattern},
                     "description": "addresses discovered to this IdP; new accounts only in these domains"},
    "requireSso": {"type": "boolean", "description": "members may not log in with a password"},
    "defaultRole": {**_ROLE, "description": "the role of a person the IdP signs in for the first time"}}}
_SOURCES = ("metadataXml", "metadataUrl", "idpEntityId", "ssoUrl", "certificates")


def _only(*fields: str) -> dict[str, Any]:
    """Exactly these of the IdP's source fields (the API takes one source: XML, a URL, or all three manual)."""
    others = [f for f in _SOURCES if f not in fields]
    return {"required": list(fields), "not": {"anyOf": [{"required": [f]} for f in others]}}


_ONE_SOURCE = [_only("metadataXml"), _only("metadataUrl"), _only("idpEntityId", "ssoUrl", "certificates")]
NO_SOURCE: dict[str, Any] = {"not": {"anyOf": [{"required": [f]} for f in _SOURCES]}}
CREATE_BODY: dict[str, Any] = {**BODY, "required": ["slug"], "oneOf": _ONE_SOURCE}
PATCH_BODY: dict[str, Any] = {**BODY, "oneOf": [*_ONE_SOURCE, NO_SOURCE]}
CERT = {"type": "object", "required": ["pem", "sha256", "subject", "notAfter"], "properties": {
    "pem": _STR, "sha256": _STR, "subject": _STR, "notAfter": _STR}}
CONNECTION = ROUTES.component("SamlConnection", {
    "type": "object",
    "required": ["id", "slug", "name", "idpEntityId", "ssoUrl", "certificates", "metadataUrl", "emailDomains",
                 "requireSso", "defaultRole", "sp", "createdAt", "updatedAt"],
    "properties": {
        "id": _STR, "slug": _STR, "name": _STR, "idpEntityId": _STR, "ssoUrl": _STR,
        "certificates": {"type": "array", "items": CERT}, "metadataUrl": nullable(_STR),
        "emailDomains": {"type": "array", "items": _STR}, "requireSso": {"type": "boolean"}, "defaultRole": _ROLE,
        "sp": {"type": "object", "description": "what to enter at the IdP",
               "required": ["entityId", "acsUrl", "metadataUrl", "loginUrl"],
               "properties": {"entityId": _STR, "acsUrl": _STR, "metadataUrl": _STR, "loginUrl": _STR}},
        "createdAt": _STR, "updatedAt": _STR}})
DISCOVERY = {"type": "object", "required": ["sso"], "properties": {
    "sso": {"type": "boolean"}, "method": {"type": "string", "enum": ["saml"]}, "loginUrl": _STR,
    "required": {"type": "boolean", "description": "the workspace refuses password logins"}}}
SP_PATH = "/auth/sso/saml/{clientID}/{slug}"
SP_PARAMS: dict[str, dict[str, Any]] = {"clientID": {"type": "string", "format": "uuid"},
                                        "slug": {"type": "string", "maxLength": 64}}
FORM = b"application/x-www-form-urlencoded"


def connections() -> SamlConnections:
    return ctx().service(SamlConnections)


def saml() -> SamlService:
    return ctx().service(SamlService)


# ---- admin API -----------------------------------------------------------------------------------

@ROUTES.add("POST", "/api/v1/sso/saml", "Add a SAML identity provider to the workspace", "sso", "sso:write", 201,
            body=CREATE_BODY, response=CONNECTION,
            responses={402: "The plan does not include SAML (FEATURE_NOT_IN_PLAN)",
                       409: "The slug is used in this workspace, or a domain by another connection"})
@authed()
async def create_connection(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await connections().create(who, body, link_base(request)), 201)


@ROUTES.add("GET", "/api/v1/sso/saml", "List the workspace's SAML identity providers", "sso", "sso:read",
            query=PAGE, response=list_of(CONNECTION))
@authed()
async def list_connections(request: Request, who: Principal) -> Response:
    return json_response(await connections().list(who, limit_param(query_one(request, "limit"), 20, 100),
                                                  query_one(request, "cursor"), link_base(request)))


@ROUTES.add("GET", "/api/v1/sso/saml/{id}", "Get a SAML identity provider", "sso", "sso:read", response=CONNECTION)
@authed()
async def get_connection(request: Request, who: Principal) -> Response:
    return json_response(await connections().get(who, route_id(request), link_base(request)))


@ROUTES.add("PATCH", "/api/v1/sso/saml/{id}", "Change a SAML identity provider (metadataUrl given: fetched again)",
            "sso", "sso:write", body=PATCH_BODY, response=CONNECTION,
            responses={409: "The slug is used in this workspace, or a domain by another connection"})
@authed()
async def update_connection(request: Request, who: Principal) -> Response:
    body = await read_json(request, ctx().max_body)
    return json_response(await connections().update(who, route_id(request), body, link_base(request)))


@ROUTES.add("DELETE", "/api/v1/sso/saml/{id}", "Remove a SAML identity provider (its domains and require-SSO go)",
            "sso", "sso:write", 204)
@authed()
async def delete_connection(request: Request, who: Principal) -> Response:
    await connections().delete(who, route_id(request), link_base(request))
    return empty_response(204)


# ---- the service provider ------------------------------------------------------------------------

def _redirect(location: str, cookie: str | None = None) -> Response:
    headers = [(b"Location", location.encode()), (b"Cache-Control", b"no-store"), (b"Referrer-Policy", b"no-referrer")]
    if cookie is not None:
        headers.append((b"Set-Cookie", cookie.encode()))
    return Response(303, headers, None)


@ROUTES.add("GET", SP_PATH + "/login", "Start signing in at the workspace's IdP (SAML AuthnRequest, HTTP-Redirect)",
            "auth", None, 303, query=(("next", {"type": "string", "maxLength": 1024}),), path_params=SP_PARAMS,
            responses={402: "The workspace's plan does not include SAML", 404: "No such SAML connection"})
async def saml_login(request: Request) -> Response:
    row = await saml().connection(route_id(request, "clientID"), route_id(request, "slug"))
    return _redirect(await saml().login_url(row, link_base(request), query_one(request, "next")))


@ROUTES.add("GET", SP_PATH + "/metadata", "This server's SAML SP metadata for the connection (give it to the IdP)",
            "auth", None, path_params=SP_PARAMS,
            responses={402: "The workspace's plan does not include SAML", 404: "No such SAML connection"})
async def saml_metadata(request: Request) -> Response:
    row = await saml().connection(route_id(request, "clientID"), route_id(request, "slug"))
    return Response(200, [(b"Cache-Control", b"no-cache")],
                    Content(b"application/samlmetadata+xml", saml().metadata(row, link_base(request))))


@ROUTES.add("POST", SP_PATH + "/acs",
            "Assertion consumer service: the IdP's signed response (HTTP-POST form, SAMLResponse) signs in",
            "auth", None, 303, path_params=SP_PARAMS,
            responses={400: "Not a form with a SAMLResponse", 401: "The response was refused (SAML_RESPONSE_INVALID): "
                       "unsigned, wrong signature, audience, recipient or destination, expired, not an answer to "
                       "a request of ours, or replayed",
                       402: "The workspace's plan does not include SAML",
                       403: "Not a member of the workspace (NOT_A_MEMBER) or an unconfirmed local account",
                       404: "No such SAML connection", 413: "The response is larger than [saml] max_response_bytes"})
async def saml_acs(request: Request) -> Response:
    service = saml()
    row = await service.connection(route_id(request, "clientID"), route_id(request, "slug"))
    content_type = (request.content_type() or b"").split(b";")[0].strip().lower()
    if content_type != FORM:
        raise BadRequest("body: an HTML form post (application/x-www-form-urlencoded) with SAMLResponse")
    raw = await read_body(request, service.cfg.max_response_bytes)
    try:
        form = parse_qs(raw.decode("latin-1"), max_num_fields=10)
    except ValueError as exc:
        raise BadRequest("body: too many form fields") from exc
    ip, agent = _client(request)
    done = await service.acs(row, link_base(request), next(iter(form.get("SAMLResponse") or []), None), ip, agent)
    cookie = session_cookie(done.signed_in.session.token, int(accounts().cfg.session_ttl_s),
                            wants_secure(request.scheme, _public_url()))
    return _redirect(done.next_path, cookie)


@ROUTES.add("GET", "/auth/sso/discover", "The single sign-on method for an e-mail address's domain (public)",
            "auth", None, query=(("email", {"type": "string", "maxLength": 254, "pattern": EMAIL_RE.pattern,
                                            "example": "alice@acme.com"}, True),),
            responses={400: "Not an e-mail address"}, response=DISCOVERY)
async def discover(request: Request) -> Response:
    return json_response(await saml().discover(query_one(request, "email"), link_base(request)),
                         headers={"Cache-Control": "no-store"})
