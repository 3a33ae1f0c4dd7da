"""Checking, in your webhook receiver, that a request came from Mittr: standard library only.

Two schemes (README "What a receiver sees"):

* `X-Mittr-Signature: v1=<hex HMAC-SHA256(secret, body)>` with `X-Mittr-Timestamp`. The signature
  covers the body only, NOT the timestamp: the age check rejects a captured request replayed as it
  was, but someone holding a captured request can change the timestamp without breaking the
  signature. De-duplicating on `X-Mittr-Event-ID` is the real guard against replays; Standard
  Webhooks (`standardWebhooks: true` on the endpoint) signs the timestamp and id too.
* Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC of
  "{id}.{timestamp}.{body}">`, keyed by the base64 after `whsec_` (other secrets: their UTF-8 bytes).

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


def verify_standard(secret: str, body: bytes | bytearray | str, headers: Mapping[str, str] | Any,
                    tolerance: float = 300, now: float | None = None) -> Any:
    """The JSON payload if a `v1,` value of `webhook-signature` is the HMAC of
    `{webhook-id}.{webhook-timestamp}.{body}` and the timestamp is within `tolerance`; else
    VerificationError. (`v1a,` Ed25519 values are skipped: verify those with the public key.)"""
    h = _lower(headers)
    raw = _as_bytes(body)
    msg_id, signature = h.get("webhook-id"), h.get("webhook-signature")
    if not msg_id or not signature:
        raise VerificationError("missing webhook-id or webhook-signature")
    ts = _fresh(h.get("webhook-timestamp"), tolerance, now)
    mac = hmac.new(standard_key(secret), f"{msg_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
    expected = base64.b64encode(mac)
    matched = False
    for token in signature.split():
        version, _, value = token.partition(",")
        if version == "v1":
            matched |= hmac.compare_digest(expected, value.encode("utf-8", "replace"))
    if not matched:
        raise VerificationError("webhook-signature does not match")
    return _payload(raw)


def verify(secret: str, body: bytes | bytearray | str, headers: Mapping[str, str] | Any,
           tolerance: float = 300, now: float | None = None) -> Any:
    """Verify a Mittr delivery under whichever scheme its headers carry; the JSON payload, or
    VerificationError. Pass the raw body exactly as received (not re-serialised JSON)."""
    h = _lower(headers)
    if "webhook-signature" in h:
        return verify_standard(secret, body, h, tolerance, now)
    return verify_mittr(secret, body, h, tolerance, now)


def _payload(raw: bytes) -> Any:
    """The body as JSON; a signed body that is not JSON (a transformation may send text) as bytes."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw
