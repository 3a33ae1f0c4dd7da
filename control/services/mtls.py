"""Client certificates for mTLS deliveries: checked when stored, key sealed at rest."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from control.errors import BadRequest


def check_pair(cert_pem: str, key_pem: str, field: str = "mtlsCert") -> None:
    """Refuse a certificate that does not parse, a key that does not parse or is encrypted,
    and a key that does not belong to the certificate."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        raise BadRequest(f"{field}: not a PEM certificate") from exc
    key_field = "keyPem" if field == "certPem" else "mtlsKey"
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{key_field}: not an unencrypted PEM private key") from exc
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise BadRequest(f"{key_field}: unsupported key type")
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if cert.public_key().public_bytes(enc, pub) != key.public_key().public_bytes(enc, pub):
        raise BadRequest(f"{key_field}: the key does not match the certificate")
