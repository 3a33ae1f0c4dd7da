"""A SAML identity provider for tests: pysaml2's own IdP (saml2.server.Server) with a key and a
self-signed certificate made here, signing responses with xmlsec1 exactly as a real IdP would.
`response()` builds one answer to an AuthnRequest, with knobs to make it wrong in one way."""

from __future__ import annotations

import base64
import datetime
import functools
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_REDIRECT, class_name
from saml2.authn_context import PASSWORDPROTECTEDTRANSPORT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.samlp import authn_request_from_string, response_from_string
from saml2.sigver import pre_signature_part

with warnings.catch_warnings():        # pysaml2's IdP side imports a cipher mode cryptography deprecated
    warnings.simplefilter("ignore")
    from saml2.server import Server

SSO_URL = "https://idp.example.test/sso"


def key_and_cert(where: Path, name: str) -> tuple[Path, Path]:
    """An RSA key and a self-signed certificate for it, as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    key_file, cert_file = where / f"{name}.key", where / f"{name}.crt"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def request_id(location: str) -> str:
    """The ID of the AuthnRequest an SP put in its HTTP-Redirect URL (read as an IdP reads it)."""
    query = parse_qs(urlsplit(location).query)
    xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
    request = authn_request_from_string(xml)
    assert request is not None
    return str(request.id)


@dataclass
class SamlIdp:
    """One IdP; `trust(sp_metadata)` loads the SP it answers (its ACS URL, entity id)."""

    entity_id: str
    key_file: Path
    cert_file: Path
    server: Any = None

    @classmethod
    def make(cls, where: Path, entity_id: str = "https://idp.example.test/metadata", name: str = "idp") -> SamlIdp:
        key_file, cert_file = key_and_cert(where, name)
        return cls(entity_id, key_file, cert_file)

    def _config(self, sp_metadata: str | None) -> IdPConfig:
        config = IdPConfig()
        config.load({
            "entityid": self.entity_id, "key_file": str(self.key_file), "cert_file": str(self.cert_file),
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [(SSO_URL, BINDING_HTTP_REDIRECT)]},
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                       "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"}}}},
            "metadata": {"inline": [sp_metadata]} if sp_metadata else {},
        })
        return config

    def metadata(self) -> str:
        out = create_metadata_string(None, self._config(None), sign=False)
        return out.decode() if isinstance(out, bytes) else str(out)

    def trust(self, sp_metadata: str) -> None:
        self.server = Server(config=self._config(sp_metadata))

    def response(self, *, in_response_to: str, acs: str, audience: str, email: str = "alice@corp.example",
                 attributes: dict[str, list[str]] | None = None, name_id: NameID | None = None,
                 sign: str = "assertion", destination: str | None = None, recipient: str | None = None,
                 not_on_or_after: str | None = None, assertion_id: str | None = None,
                 audience_text: str | None = None) -> str:
        """A base64 SAMLResponse as the HTTP-POST binding carries it. `sign`: "assertion",
        "response" or "none"; the other knobs replace one value before signing."""
        assert self.server is not None, "trust() the SP first"
        identity = attributes if attributes is not None else {
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": [email],
            "http://schemas.microsoft.com/identity/claims/displayname": ["Alice Example"]}
        made = self.server.create_authn_response(
            identity=identity, in_response_to=in_response_to, destination=acs, sp_entity_id=audience,
            name_id=name_id or NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            sign_assertion=False, sign_response=False, authn={"class_ref": PASSWORDPROTECTEDTRANSPORT})
        response = response_from_string(str(made))
        assertion = response.assertion[0] if isinstance(response.assertion, list) else response.assertion
        if destination is not None:
            response.destination = destination
        for confirmation in assertion.subject.subject_confirmation:
            if recipient is not None:
                confirmation.subject_confirmation_data.recipient = recipient
            if not_on_or_after is not None:
                confirmation.subject_confirmation_data.not_on_or_after = not_on_or_after
        if not_on_or_after is not None:
            assertion.conditions.not_on_or_after = not_on_or_after
        if assertion_id is not None:
            assertion.id = assertion_id
        if audience_text is not None:
            assertion.conditions.audience_restriction[0].audience[0].text = audience_text
        sec = self.server.sec
        if sign == "assertion":
            assertion.signature = pre_signature_part(assertion.id, sec.my_cert, 1)
            xml = sec.sign_statement(str(response), class_name(assertion), node_id=assertion.id)
        elif sign == "response":
            response.signature = pre_signature_part(response.id, sec.my_cert, 1)
            xml = sec.sign_statement(str(response), class_name(response), node_id=response.id)
        else:
            xml = str(response)
        return base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode()


@functools.cache
def certificate_pem() -> str:
    """A self-signed certificate, PEM (one per test process): enough to configure an IdP by hand."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "route-walk idp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()
