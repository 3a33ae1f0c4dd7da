"""Webhook payload signatures so receivers can check a delivery came from us, unaltered.

Two schemes: a simple ``v1=<hex HMAC-SHA256>`` header, and the Standard Webhooks
headers (``webhook-id``/``webhook-timestamp``/``webhook-signature``), optionally with an
asymmetric Ed25519 signature (``v1a``) that receivers verify without the shared secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a credential
_SEPARATORS = re.compile(r"[\s,]+")


def sign_v1(secret: bytes, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 of the body."""
    return "v1=" + hmac.digest(secret, body, "sha256").hex()   # one-shot C path: no HMAC object per call


def verify_v1(secret: bytes, body: bytes, header: str) -> bool:
    """True if any ``v1=`` value in the header matches (constant-time comparison).

    Several values (space or comma separated) allow rotating secrets without downtime.
    """
    expected = sign_v1(secret, body)[3:].encode("ascii")
    matched = False
    for token in _SEPARATORS.split(header):
        if token[:3].lower() == "v1=":
            candidate = token[3:].lower().encode("utf-8", "replace")
            matched |= hmac.compare_digest(expected, candidate)
    return matched


def generate_secret() -> str:
    """A new per-endpoint signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """HMAC key of a secret string: base64 payload of ``whsec_...``, else its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"signing secret is not valid base64 after {SECRET_PREFIX!r}") from exc
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("signing secret is empty")
    return key


def standard_webhook_headers(
    msg_id: str,
    timestamp: int,
    body: bytes,
    secret: str,
    ed25519_private_key: bytes | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers for one message (signed: ``{id}.{timestamp}.{body}``)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(mac).decode("ascii")
    if ed25519_private_key is not None:
        key = Ed25519PrivateKey.from_private_bytes(ed25519_private_key)
        signature += " v1a," + base64.b64encode(key.sign(content)).decode("ascii")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
