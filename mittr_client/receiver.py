"""Checking, in your webhook receiver, that a request came from Mittr: standard library only.

Two schemes (README "What a receiver sees"):

* `X-Mittr-Signature: v1=<hex HMAC-SHA256(secret, body)>` with `X-Mittr-Timestamp`. The signature
  covers the body only, NOT the timestamp: the age check rejects a captured request replayed as it
  was, but someone holding a captured request can change the timestamp without breaking the
  signature. De-duplicating on `X-Mittr-Event-ID` is the real guard against replays; Standard
  Webhooks (`standardWebhooks: true` on the endpoint) signs the timestamp and id too.
* Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC of
  "{id}.{timestamp}.{body}">`, keyed by the base64 after `whsec_` (other secrets: their UTF-8 bytes).
  An endpoint with an ed25519 key also sends `v1a,<base64 Ed25519 signature>` of the same content;
  a receiver holding only the public key (`standardWebhooksPublicKey`, `whpk_...`) verifies that
  one (`public_key=`). Ed25519 needs the `cryptography` package (`pip install cryptography`); the
  rest is standard library only.

`verify` picks the scheme from the headers present (Standard Webhooks first, it is the stronger one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a credential
_SEPARATORS = re.compile(r"[\s,]+")


class VerificationError(ValueError):
    """The request is not provably from Mittr (bad or missing signature, or too old/new)."""


def _lower(headers: Mapping[str, str] | Any) -> dict[str, str]:
    """Any header mapping (dict, Starlette/Flask/aiohttp headers, Django META-free `request.headers`)."""
    pairs: Any = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in pairs}


def _as_bytes(body: bytes | bytearray | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _fresh(timestamp: str | None, tolerance: float, now: float | None) -> int:
    if timestamp is None or not timestamp.strip().isdigit():
        raise VerificationError("missing or malformed timestamp")
    ts = int(timestamp.strip())
    current = time.time() if now is None else now
    if tolerance and abs(current - ts) > tolerance:
        raise VerificationError(f"timestamp {ts} is more than {tolerance:g} s from now")
    return ts


def verify_mittr(secret: str, body: bytes | bytearray | str, headers: Mapping[str, str] | Any,
                 tolerance: float = 300, now: float | None = None) -> Any:
    """The JSON payload if `X-Mittr-Signature` matches (any of its `v1=` values, so a receiver can
    hold a rotated pair) and `X-Mittr-Timestamp` is within `tolerance` seconds; else
    VerificationError. The HMAC key is the secret string's UTF-8 bytes, exactly as shown."""
    h = _lower(headers)
    raw = _as_bytes(body)
    signature = h.get("x-mittr-signature")
    if not signature:
        raise VerificationError("missing X-Mittr-Signature")
    _fresh(h.get("x-mittr-timestamp"), tolerance, now)
    expected = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest().encode("ascii")
    matched = False
    for token in _SEPARATORS.split(signature):
        if token[:3].lower() == "v1=":
            matched |= hmac.compare_digest(expected, token[3:].lower().encode("utf-8", "replace"))
    if not matched:
        raise VerificationError("X-Mittr-Signature does not match")
    return _payload(raw)


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of a secret: base64 after `whsec_`, else the UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX):]
        try:
            return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise VerificationError("secret is not valid base64 after whsec_") from exc
    return secret.encode("utf-8")


PUBLIC_KEY_PREFIX = "whpk_"


def ed25519_public_key(public_key: str) -> bytes:
    """The raw 32 bytes of a Standard Webhooks public key: base64 after `whpk_` (the prefix is optional)."""
    encoded = public_key[len(PUBLIC_KEY_PREFIX):] if public_key.startswith(PUBLIC_KEY_PREFIX) else public_key
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise VerificationError("public key is not valid base64 after whpk_") from exc
    if len(raw) != 32:
        raise VerificationError("public key is not a 32-byte ed25519 key")
    return raw


def _ed25519_verifier(public_key: str) -> Any:
    """A verify(signature, content) callable; imported lazily so the HMAC schemes need nothing else."""
    raw = ed25519_public_key(public_key)
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as exc:      # pragma: no cover - depends on the environment
        raise VerificationError("verifying v1a (ed25519) signatures needs the 'cryptography' package") from exc
    key = Ed25519PublicKey.from_public_bytes(raw)

    def check(signature: bytes, content: bytes) -> bool:
        try:
            key.verify(signature, content)
        except InvalidSignature:
            return False
        return True
    return check


def verify_standard(secret: str | None, body: bytes | bytearray | str, headers: Mapping[str, str] | Any,
                    tolerance: float = 300, now: float | None = None, public_key: str | None = None) -> Any:
    """The JSON payload if a signature in `webhook-signature` is good for
    `{webhook-id}.{webhook-timestamp}.{body}` and the timestamp is within `tolerance`; else
    VerificationError. Good means: a `v1,` value equal to the HMAC keyed by `secret`, or (given
    `public_key`, `whpk_...`) a `v1a,` value that is an Ed25519 signature by that key. Either
    suffices, as the Standard Webhooks spec says; pass `secret=None` to accept only `v1a`."""
    if secret is None and public_key is None:
        raise ValueError("verify_standard needs a secret, a public key, or both")
    h = _lower(headers)
    raw = _as_bytes(body)
    msg_id, signature = h.get("webhook-id"), h.get("webhook-signature")
    if not msg_id or not signature:
        raise VerificationError("missing webhook-id or webhook-signature")
    ts = _fresh(h.get("webhook-timestamp"), tolerance, now)
    content = f"{msg_id}.{ts}.".encode() + raw
    expected = base64.b64encode(hmac.new(standard_key(secret), content, hashlib.sha256).digest()) \
        if secret is not None else None
    asymmetric = _ed25519_verifier(public_key) if public_key is not None else None
    matched = False
    for token in signature.split():
        version, _, value = token.partition(",")
        if version == "v1" and expected is not None:
            matched |= hmac.compare_digest(expected, value.encode("utf-8", "replace"))
        elif version == "v1a" and asymmetric is not None and not matched:
            try:
                sig = base64.b64decode(value, validate=True)
            except binascii.Error:
                continue
            matched = len(sig) == 64 and asymmetric(sig, content)
    if not matched:
        raise VerificationError("webhook-signature does not match")
    return _payload(raw)


def verify(secret: str | None, body: bytes | bytearray | str, headers: Mapping[str, str] | Any,
           tolerance: float = 300, now: float | None = None, public_key: str | None = None) -> Any:
    """Verify a Mittr delivery under whichever scheme its headers carry; the JSON payload, or
    VerificationError. Pass the raw body exactly as received (not re-serialised JSON). With
    `public_key` (`whpk_...`), a Standard Webhooks `v1a` signature by it is accepted too."""
    h = _lower(headers)
    if "webhook-signature" in h:
        return verify_standard(secret, body, h, tolerance, now, public_key)
    if secret is None:
        raise VerificationError("no webhook-signature header: the X-Mittr-Signature scheme needs the secret")
    return verify_mittr(secret, body, h, tolerance, now)


def _payload(raw: bytes) -> Any:
    """The body as JSON; a signed body that is not JSON (a transformation may send text) as bytes."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw
