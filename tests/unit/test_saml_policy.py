"""The pure SAML rules: where a sign-in may land, what a connection body may say, how IdP
metadata is read and bounded, and where an assertion's e-mail address and name come from."""

from __future__ import annotations

import base64

import pytest
from saml2 import saml

from control.errors import ValidationError
from control.policy.saml import (
    DASHBOARD,
    IdpInfo,
    SamlRefused,
    decode_saml_response,
    idp_metadata_xml,
    parse_connection,
    parse_idp_metadata,
    person_of,
    relay_path,
)
from tests.support.saml_idp import certificate_pem

MAX = 1 << 20


@pytest.mark.parametrize("value", [None, "", "https://evil.example/", "//evil.example/x", "/\\evil.example",
                                   "javascript:alert(1)", "/a b", "/x\r\nSet-Cookie: a=b", "dashboard"])
def test_relay_goes_nowhere_but_a_path_here(value: str | None) -> None:
    assert relay_path(value) == DASHBOARD


def test_a_path_here_is_kept() -> None:
    assert relay_path("/dashboard/endpoints?tab=2#x") == "/dashboard/endpoints?tab=2#x"


def test_metadata_round_trip_and_manual_setup_agree() -> None:
    idp = IdpInfo("https://idp.example/", "https://idp.example/sso", (certificate_pem(),))
    assert parse_idp_metadata(idp_metadata_xml(idp).encode(), MAX) == idp


@pytest.mark.parametrize(("xml", "why"), [
    (b"<x/>", "exactly one"),
    (b"<x", "not SAML"),
    (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "document type"),
    (b"<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata' entityID='e'/>", "exactly one"),
    (b"\xff\xfe", "not SAML"),
])
def test_unreadable_metadata_is_a_validation_error(xml: bytes, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        parse_idp_metadata(xml, MAX)


def test_metadata_size_is_bounded() -> None:
    idp = IdpInfo("https://idp.example/", "https://idp.example/sso", (certificate_pem(),))
    with pytest.raises(ValidationError, match="larger than"):
        parse_idp_metadata(idp_metadata_xml(idp).encode(), 100)


@pytest.mark.parametrize(("body", "why"), [
    ({"metadataXml": "<x/>"}, "slug"),
    ({"slug": "ok"}, "IdP is required"),
    ({"slug": "-bad", "metadataXml": "<x/>"}, "slug"),
    ({"slug": "ok", "metadataXml": "<x/>", "metadataUrl": "https://x.example/m"}, "give one"),
    ({"slug": "ok", "idpEntityId": "x"}, "all three"),
    ({"slug": "ok", "metadataUrl": "ftp://x.example/m"}, "http"),
    ({"slug": "ok", "metadataXml": "<x/>", "emailDomains": ["localhost"]}, "domain"),
    ({"slug": "ok", "metadataXml": "<x/>", "requireSso": "yes"}, "requireSso"),
    ({"slug": "ok", "metadataXml": "<x/>", "extra": 1}, "unknown field"),
])
def test_connection_bodies(body: dict[str, object], why: str) -> None:
    with pytest.raises(Exception, match=why):
        parse_connection(body, True, MAX)


def test_a_patch_may_name_one_field() -> None:
    given = parse_connection({"requireSso": True}, False, MAX)
    assert given.require_sso is True and given.slug is None and given.email_domains is None


def test_domains_are_lower_case_and_unique() -> None:
    given = parse_connection({"emailDomains": ["Acme.COM", "acme.com.", "b.example"]}, False, MAX)
    assert given.email_domains == ("acme.com", "b.example")


def test_a_saml_response_is_bounded_base64_without_doctype() -> None:
    assert decode_saml_response(base64.b64encode(b"<r/>").decode(), 100) == b"<r/>"
    for value, why in ((None, "missing"), ("A" * 200, "too large"), ("***", "base64"),
                       (base64.b64encode(b"<!doctype r><r/>").decode(), "document type")):
        with pytest.raises(SamlRefused, match=why):
            decode_saml_response(value, 100)


def _assertion(name_id: saml.NameID | None, attributes: dict[str, list[str]]) -> saml.Assertion:
    statement = saml.AttributeStatement(attribute=[
        saml.Attribute(name=name, attribute_value=[saml.AttributeValue(text=v) for v in values])
        for name, values in attributes.items()])
    return saml.Assertion(subject=saml.Subject(name_id=name_id), attribute_statement=[statement])


def test_the_address_comes_from_an_email_name_id_first() -> None:
    who = person_of(_assertion(saml.NameID(format=saml.NAMEID_FORMAT_EMAILADDRESS, text="a@x.example"),
                               {"email": ["other@x.example"], "displayName": ["A"]}))
    assert (who.email, who.name, who.subject) == ("a@x.example", "A", "a@x.example")


def test_azure_claims_and_a_persistent_name_id() -> None:
    who = person_of(_assertion(saml.NameID(format=saml.NAMEID_FORMAT_PERSISTENT, text="opaque-1"), {
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["b@x.example"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Bea"],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": ["Bee"]}))
    assert (who.email, who.name, who.subject) == ("b@x.example", "Bea Bee", "opaque-1")


def test_no_address_is_refused() -> None:
    with pytest.raises(SamlRefused, match="no e-mail"):
        person_of(_assertion(saml.NameID(format=saml.NAMEID_FORMAT_TRANSIENT, text="t-1"), {"name": ["x"]}))
