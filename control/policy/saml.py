"""SAML 2.0 with a workspace's own identity provider, decided without I/O (docs/saml.md).

What an admin sends (a connection: slug, IdP metadata or its fields, e-mail domains, require-SSO,
default role), reading IdP metadata into the three things we keep (entity id, HTTP-Redirect SSO URL,
signing certificates), the pysaml2 configuration of our service provider, and what a verified
assertion says (e-mail address, name, stable subject). Every XML document is bounded in size and
refused when it carries a DOCTYPE (SAML never needs one; no entity of any kind is expanded) before
pysaml2 parses it, itself through defusedxml.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, md, samlp
from saml2 import xmldsig as ds
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_UNSPECIFIED

from control.errors import ValidationError
from control.policy.access import Role
from control.validate import bool_field, need_object, str_field, url_field

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
MAX_DOMAINS = 50
MAX_CERTS = 5
MAX_NAME = 200
DASHBOARD = "/dashboard/"
CONNECTION_FIELDS = frozenset({"slug", "name", "metadataXml", "metadataUrl", "idpEntityId", "ssoUrl", "certificates",
                               "emailDomains", "requireSso", "defaultRole"})
MANUAL_FIELDS = ("idpEntityId", "ssoUrl", "certificates")

# Where IdPs put the e-mail address and the name when the NameID is not an address. Compared
# without regard to case, against the attribute's Name and its FriendlyName.
EMAIL_ATTRIBUTES: tuple[str, ...] = (
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",   # Azure AD / Entra ID, ADFS
    "email", "mail", "emailaddress", "user.email",                           # Okta's usual statements
    "urn:oid:0.9.2342.19200300.100.1.3",                                     # mail, URI name format
)
DISPLAY_NAME_ATTRIBUTES: tuple[str, ...] = (
    "http://schemas.microsoft.com/identity/claims/displayname", "displayname", "name", "fullname",
    "urn:oid:2.16.840.1.113730.3.1.241",
)
GIVEN_NAME_ATTRIBUTES: tuple[str, ...] = (
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "firstname", "givenname",
    "urn:oid:2.5.4.42",
)
SURNAME_ATTRIBUTES: tuple[str, ...] = (
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "lastname", "surname", "sn",
    "urn:oid:2.5.4.4",
)


class SamlRefused(ValueError):
    """A SAML message that must not sign anyone in; the text says why (for the log and the answer)."""


@dataclass(frozen=True, slots=True)
class IdpInfo:
    entity_id: str
    sso_url: str
    certs: tuple[str, ...]           # PEM


@dataclass(frozen=True, slots=True)
class ConnectionInput:
    """What a POST or PATCH sets; None: not given (PATCH keeps the stored value)."""
    slug: str | None = None
    name: str | None = None
    metadata_xml: str | None = None
    metadata_url: str | None = None
    idp: IdpInfo | None = None               # given field by field
    email_domains: tuple[str, ...] | None = None
    require_sso: bool | None = None
    default_role: Role | None = None


@dataclass(frozen=True, slots=True)
class SpUrls:
    """Our side of one connection: what the IdP is told."""
    entity_id: str
    acs: str
    login: str
    metadata: str


# ---- admin input ---------------------------------------------------------------------------------

def parse_domain(value: object, field: str) -> str:
    text = str_field(value, field, max_len=253, allow_empty=False).strip().lower().rstrip(".")
    if not DOMAIN_RE.match(text):
        raise ValidationError(f"{field}: not a domain name (like example.com)")
    return text


def parse_connection(body: Any, creating: bool, max_metadata_bytes: int) -> ConnectionInput:
    data = need_object(body)
    unknown = sorted(set(data) - CONNECTION_FIELDS)
    if unknown:
        raise ValidationError(f"{unknown[0]}: unknown field")
    sources = [k for k in ("metadataXml", "metadataUrl") if data.get(k) is not None]
    manual = [k for k in MANUAL_FIELDS if data.get(k) is not None]
    if len(sources) + (1 if manual else 0) > 1:
        raise ValidationError("metadataXml, metadataUrl and idpEntityId/ssoUrl/certificates: give one of them")
    if creating and not sources and not manual:
        raise ValidationError("metadataXml, metadataUrl or idpEntityId/ssoUrl/certificates: the IdP is required")
    if manual and len(manual) != len(MANUAL_FIELDS):
        raise ValidationError("idpEntityId, ssoUrl and certificates: give all three")
    slug = data.get("slug")
    if slug is not None or creating:
        slug = str_field(slug, "slug", max_len=64, allow_empty=False)
        if not SLUG_RE.match(slug):
            raise ValidationError("slug: 1 to 64 lower-case letters, digits and '-' (not at either end)")
    name = data.get("name")
    if name is not None:
        name = str_field(name, "name", max_len=MAX_NAME).strip()
    xml = data.get("metadataXml")
    if xml is not None:
        xml = str_field(xml, "metadataXml", max_len=max_metadata_bytes, allow_empty=False)
    url = data.get("metadataUrl")
    if url is not None:
        url = url_field(url, "metadataUrl")
    idp = None
    if manual:
        certs = data["certificates"]
        if not isinstance(certs, list) or not certs or len(certs) > MAX_CERTS:
            raise ValidationError(f"certificates: 1 to {MAX_CERTS} PEM certificates")
        idp = IdpInfo(str_field(data["idpEntityId"], "idpEntityId", max_len=1024, allow_empty=False).strip(),
                      url_field(data["ssoUrl"], "ssoUrl"),
                      tuple(parse_certificate(c, f"certificates[{i}]") for i, c in enumerate(certs)))
    domains = data.get("emailDomains")
    parsed_domains = None
    if domains is not None:
        if not isinstance(domains, list) or len(domains) > MAX_DOMAINS:
            raise ValidationError(f"emailDomains: a list of at most {MAX_DOMAINS} domains")
        parsed_domains = tuple(sorted({parse_domain(d, f"emailDomains[{i}]") for i, d in enumerate(domains)}))
    require = data.get("requireSso")
    role = data.get("defaultRole")
    if role is not None and role not in ("admin", "editor", "viewer"):
        raise ValidationError("defaultRole: must be one of admin, editor, viewer")
    return ConnectionInput(slug, name, xml, url, idp, parsed_domains,
                           bool_field(require, "requireSso") if require is not None else None, role)


def parse_certificate(value: object, field: str) -> str:
    """A PEM certificate (or its base64 DER body, as metadata carries it), normalised to PEM."""
    text = str_field(value, field, max_len=16384, allow_empty=False).strip()
    try:
        if "-----BEGIN" in text:
            cert = x509.load_pem_x509_certificate(text.encode())
        else:
            cert = x509.load_der_x509_certificate(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ValidationError(f"{field}: not an X.509 certificate (PEM)") from exc
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def certificate_json(pem: str) -> dict[str, Any]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    return {"pem": pem, "sha256": hashlib.sha256(der).hexdigest(), "subject": cert.subject.rfc4514_string(),
            "notAfter": cert.not_valid_after_utc.isoformat().replace("+00:00", "Z")}


def _der_b64(pem: str) -> str:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


# ---- XML bounds ----------------------------------------------------------------------------------

def refuse_dtd(xml: bytes, what: str) -> None:
    """No DOCTYPE, hence no entity at all (XXE, billion laughs): SAML and its metadata never need one."""
    if b"<!DOCTYPE" in xml.upper() or b"<!ENTITY" in xml.upper():
        raise SamlRefused(f"{what}: a document type declaration is not allowed")


def decode_saml_response(value: str | None, max_bytes: int) -> bytes:
    """The XML a SAMLResponse form field carries (HTTP-POST binding: base64), bounded and DTD-free."""
    if not value:
        raise SamlRefused("SAMLResponse: missing")
    if len(value) > max_bytes * 4 // 3 + 4:
        raise SamlRefused("SAMLResponse: too large")
    try:
        xml = base64.b64decode("".join(value.split()), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SamlRefused("SAMLResponse: not base64") from exc
    refuse_dtd(xml, "SAMLResponse")
    return xml


# ---- IdP metadata --------------------------------------------------------------------------------

def parse_idp_metadata(xml: bytes, max_bytes: int, entity_id: str | None = None) -> IdpInfo:
    """The IdP a metadata document describes (an EntityDescriptor, or an EntitiesDescriptor with one
    IdP): its entity id, HTTP-Redirect single sign-on URL and signing certificates."""
    if len(xml) > max_bytes:
        raise ValidationError(f"metadata: larger than {max_bytes} bytes")
    try:
        refuse_dtd(xml, "metadata")
        text = xml.decode("utf-8")
        single = md.entity_descriptor_from_string(text)
        entities = [single] if single is not None else list(
            getattr(md.entities_descriptor_from_string(text), "entity_descriptor", None) or [])
    except SamlRefused as exc:
        raise ValidationError(str(exc)) from exc
    except Exception as exc:        # defusedxml, pysaml2 and codec errors alike: not metadata we can read
        raise ValidationError("metadata: not SAML 2.0 metadata XML") from exc
    idps = [e for e in entities if e is not None and e.idpsso_descriptor and (entity_id is None or
                                                                              e.entity_id == entity_id)]
    if len(idps) != 1:
        raise ValidationError("metadata: must describe exactly one identity provider (IDPSSODescriptor)")
    ed = idps[0]
    sso_url, certs = None, []
    for descriptor in ed.idpsso_descriptor:
        for sso in descriptor.single_sign_on_service:
            if sso.binding == BINDING_HTTP_REDIRECT and sso_url is None:
                sso_url = sso.location
        for key in descriptor.key_descriptor:
            if key.use not in (None, "", "signing") or key.key_info is None:
                continue
            for data in key.key_info.x509_data:
                if data.x509_certificate is not None and data.x509_certificate.text:
                    certs.append(parse_certificate(data.x509_certificate.text, "metadata: certificate"))
    if not ed.entity_id:
        raise ValidationError("metadata: the IdP has no entityID")
    if sso_url is None:
        raise ValidationError("metadata: the IdP has no SingleSignOnService with the HTTP-Redirect binding")
    if not certs:
        raise ValidationError("metadata: the IdP has no signing certificate")
    return IdpInfo(str(ed.entity_id), url_field(sso_url, "metadata: SingleSignOnService"),
                   tuple(dict.fromkeys(certs))[:MAX_CERTS])


def idp_metadata_xml(idp: IdpInfo) -> str:
    """The IdP as pysaml2 reads it, built from what we keep (one path for metadata and manual setup)."""
    keys = [md.KeyDescriptor(use="signing", key_info=ds.KeyInfo(x509_data=[ds.X509Data(
        x509_certificate=ds.X509Certificate(text=_der_b64(pem)))])) for pem in idp.certs]
    descriptor = md.IDPSSODescriptor(
        protocol_support_enumeration=samlp.NAMESPACE, key_descriptor=keys,
        single_sign_on_service=[md.SingleSignOnService(binding=BINDING_HTTP_REDIRECT, location=idp.sso_url)])
    return str(md.EntityDescriptor(entity_id=idp.entity_id, idpsso_descriptor=[descriptor]))


# ---- our service provider ------------------------------------------------------------------------

def sp_urls(base: str, client_id: object, slug: str) -> SpUrls:
    root = f"{base.rstrip('/')}/auth/sso/saml/{client_id}/{slug}"
    return SpUrls(f"{root}/metadata", f"{root}/acs", f"{root}/login", f"{root}/metadata")


def xmlsec_binary() -> str:
    found = shutil.which("xmlsec1")
    if found is None:
        raise RuntimeError("xmlsec1 is not installed (Debian: apt-get install xmlsec1); SAML needs it")
    return found


def sp_config(urls: SpUrls, idp: IdpInfo, clock_skew_s: int) -> dict[str, Any]:
    """pysaml2's configuration for one connection: unsigned AuthnRequests over HTTP-Redirect, the
    ACS over HTTP-POST, no unsolicited (IdP-initiated) responses, and the response or its
    assertion signed by one of the IdP's certificates."""
    return {
        "entityid": urls.entity_id,
        "xmlsec_binary": xmlsec_binary(),
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(urls.acs, BINDING_HTTP_POST)]},
            "allow_unsolicited": False,
            "authn_requests_signed": False,
            "want_response_signed": False,
            "want_assertions_signed": False,
            "want_assertions_or_response_signed": True,
            "name_id_format": NAMEID_FORMAT_UNSPECIFIED,
            "name_id_format_allow_create": True,
        }},
        "metadata": {"inline": [idp_metadata_xml(idp)]},
        "accepted_time_diff": int(clock_skew_s),
        "allow_unknown_attributes": True,
    }


def relay_path(value: str | None) -> str:
    """Where the browser goes after signing in: a path on this server, else the dashboard. Never
    another site (`//host`, `/\\host`, a scheme): no open redirect through the login."""
    if not value or len(value) > 1024 or not value.startswith("/") or value.startswith(("//", "/\\")):
        return DASHBOARD
    if any(ord(ch) < 33 or ord(ch) == 127 or ch == "\\" for ch in value):
        return DASHBOARD
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DASHBOARD
    return value


# ---- what an assertion says ----------------------------------------------------------------------

def attributes(assertion: Any) -> dict[str, list[str]]:
    """Every attribute of the assertion by lower-case Name and FriendlyName, values as text."""
    found: dict[str, list[str]] = {}
    for statement in assertion.attribute_statement or ():
        for attribute in statement.attribute or ():
            values = [v.text.strip() for v in attribute.attribute_value or () if v.text and v.text.strip()]
            for key in (attribute.name, attribute.friendly_name):
                if key:
                    found.setdefault(key.lower(), []).extend(values)
    return found


def _first(attrs: Mapping[str, list[str]], names: Iterable[str]) -> str | None:
    for name in names:
        values = attrs.get(name.lower())
        if values:
            return values[0]
    return None


@dataclass(frozen=True, slots=True)
class Person:
    email: str
    name: str
    subject: str          # the identity's stable key at this IdP


def person_of(assertion: Any) -> Person:
    """The e-mail address (the NameID in emailAddress format, else a known attribute), a display
    name, and the subject (a persistent NameID, else the address)."""
    name_id = assertion.subject.name_id if assertion.subject is not None else None
    fmt = (name_id.format or NAMEID_FORMAT_UNSPECIFIED) if name_id is not None else None
    value = (name_id.text or "").strip() if name_id is not None else ""
    attrs = attributes(assertion)
    email = value if fmt == NAMEID_FORMAT_EMAILADDRESS and value else _first(attrs, EMAIL_ATTRIBUTES)
    if not email:
        raise SamlRefused("the assertion carries no e-mail address (NameID format emailAddress, or an "
                          "attribute such as email or "
                          "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress)")
    display = _first(attrs, DISPLAY_NAME_ATTRIBUTES) or " ".join(
        p for p in (_first(attrs, GIVEN_NAME_ATTRIBUTES), _first(attrs, SURNAME_ATTRIBUTES)) if p)
    subject = value if fmt == NAMEID_FORMAT_PERSISTENT and value else email.lower()
    return Person(email, display, subject)


def check_addressed_to_us(response: Any, assertion: Any, acs_url: str) -> None:
    """Destination of the response and Recipient of the bearer confirmation must be our ACS URL
    (pysaml2 only logs a wrong Destination, and accepts the entity id as a Recipient)."""
    if response.destination and response.destination != acs_url:
        raise SamlRefused(f"the response is addressed to {response.destination}, not this ACS URL")
    confirmations = assertion.subject.subject_confirmation if assertion.subject is not None else []
    recipients = [c.subject_confirmation_data.recipient for c in confirmations or ()
                  if c.subject_confirmation_data is not None]
    if acs_url not in recipients:
        raise SamlRefused("the assertion's SubjectConfirmationData Recipient is not this ACS URL")


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower().rstrip(".")
