"""Signatures: v1 HMAC header and Standard Webhooks, checked against the reference library."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from control.policy.signing import (
    generate_secret,
    secret_bytes,
    sign_v1,
    standard_webhook_headers,
    verify_v1,
)


def test_sign_v1_known_value() -> None:
    expected = hmac.new(b"key", b"hello", hashlib.sha256).hexdigest()
    assert sign_v1(b"key", b"hello") == "v1=" + expected
    assert expected == "9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"


def test_verify_v1() -> None:
    header = sign_v1(b"new", b"body")
    assert verify_v1(b"new", b"body", header)
    assert not verify_v1(b"new", b"other", header)
    assert not verify_v1(b"wrong", b"body", header)
    # Several values (secret rotation), space or comma separated, any order; hex case-insensitive.
    old = sign_v1(b"old", b"body")
    assert verify_v1(b"new", b"body", f"{old} {header}")
    assert verify_v1(b"old", b"body", f"{header},{old}")
    assert verify_v1(b"new", b"body", f"v0=abc, {header.upper().replace('V1=', 'v1=')}")
    for junk in ("", "v1=", "v2=" + header[3:], header[3:], "v1=é", "v1=zz"):
        assert not verify_v1(b"new", b"body", junk)


@settings(max_examples=100, deadline=None)
@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=256))
def test_v1_roundtrip(secret: bytes, body: bytes) -> None:
    assert verify_v1(secret, body, sign_v1(secret, body))
    assert not verify_v1(secret + b"x", body, sign_v1(secret, body))


def test_generate_secret() -> None:
    a, b = generate_secret(), generate_secret()
    assert a != b
    assert a.startswith("whsec_")
    assert len(secret_bytes(a)) == 32
    assert base64.b64decode(a[len("whsec_") :]) == secret_bytes(a)


def test_secret_bytes() -> None:
    raw = bytes(range(32))
    assert secret_bytes("whsec_" + base64.b64encode(raw).decode()) == raw
    assert secret_bytes("whsec_" + base64.b64encode(raw).decode().rstrip("=")) == raw  # unpadded
    assert secret_bytes("plain-secret") == b"plain-secret"
    assert secret_bytes("ünï") == "ünï".encode()
    for bad in ("", "whsec_", "whsec_!!!notbase64"):
        with pytest.raises(ValueError):
            secret_bytes(bad)


def _json_body() -> bytes:
    return b'{"type":"invoice.paid","data":{"id":"in_1","amount":1250}}'


def test_standard_webhooks_headers_verify_with_reference_library() -> None:
    secret = generate_secret()
    ts = int(time.time())  # the reference library only accepts timestamps within 5 minutes
    body = _json_body()
    headers = standard_webhook_headers("msg_2abc", ts, body, secret)
    assert headers["webhook-id"] == "msg_2abc"
    assert headers["webhook-timestamp"] == str(ts)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {"type": "invoice.paid", "data": {"id": "in_1", "amount": 1250}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"1250", b"9999"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)


def test_standard_webhooks_with_plain_secret() -> None:
    # A secret without the whsec_ prefix is keyed by its UTF-8 bytes.
    ts = int(time.time())
    headers = standard_webhook_headers("msg_1", ts, b"{}", "plain-secret")
    assert Webhook(b"plain-secret").verify(b"{}", headers) == {}


def test_standard_webhooks_ed25519() -> None:
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    raw_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    secret = generate_secret()
    ts = int(time.time())
    body = _json_body()
    headers = standard_webhook_headers("msg_9", ts, body, secret, ed25519_private_key=raw_private)
    parts = headers["webhook-signature"].split(" ")
    assert [p.split(",")[0] for p in parts] == ["v1", "v1a"]
    # The symmetric part still verifies with the reference library (it skips v1a).
    Webhook(secret).verify(body, headers)
    # The asymmetric part verifies with the public key over "{id}.{timestamp}.{body}".
    signature = base64.b64decode(parts[1].split(",", 1)[1])
    Ed25519PublicKey.from_public_bytes(raw_public).verify(signature, f"msg_9.{ts}.".encode() + body)
    expected_mac = hmac.new(secret_bytes(secret), f"msg_9.{ts}.".encode() + body, hashlib.sha256).digest()
    assert parts[0] == "v1," + base64.b64encode(expected_mac).decode()


def test_standard_webhooks_is_deterministic() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    one = standard_webhook_headers("id", 1_700_000_000, b"x", secret)
    two = standard_webhook_headers("id", 1_700_000_000, b"x", secret)
    assert one == two
    assert one != standard_webhook_headers("id", 1_700_000_001, b"x", secret)
