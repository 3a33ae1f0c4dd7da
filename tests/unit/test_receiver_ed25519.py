"""Standard Webhooks `v1a` (Ed25519) signatures: what the engine signs with an endpoint's ed25519
key, a receiver holding only the public key (`whpk_...`) verifies with mittr_client; the official
`standardwebhooks` library knows only `v1` (HMAC) and must still accept the same header."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from standardwebhooks import Webhook

from control.policy.signing import generate_secret, standard_webhook_headers
from mittr_client.receiver import VerificationError, ed25519_public_key, verify, verify_standard

BODY = b'{"orderId":"ord_1","amount":9900}'
NOW = 1_776_000_000


def keypair() -> tuple[bytes, str]:
    """(raw private key as the engine holds it, public key as the API shows it)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, "whpk_" + base64.b64encode(public).decode()


def only_v1a(headers: dict[str, str]) -> dict[str, str]:
    kept = [t for t in headers["webhook-signature"].split() if t.startswith("v1a,")]
    return {**headers, "webhook-signature": " ".join(kept)}


def test_the_public_key_alone_verifies_the_servers_v1a_signature() -> None:
    private, public = keypair()
    headers = standard_webhook_headers("msg_abc", NOW, BODY, generate_secret(), private)
    assert verify_standard(None, BODY, headers, now=NOW, public_key=public) == {"orderId": "ord_1", "amount": 9900}
    assert verify(None, BODY, only_v1a(headers), now=NOW, public_key=public)["amount"] == 9900


def test_v1a_is_refused_for_another_body_id_time_or_key() -> None:
    private, public = keypair()
    headers = only_v1a(standard_webhook_headers("msg_abc", NOW, BODY, generate_secret(), private))
    _, other_public = keypair()
    cases = [(BODY + b" ", headers, public), (BODY, {**headers, "webhook-id": "msg_abd"}, public),
             (BODY, {**headers, "webhook-timestamp": str(NOW + 1)}, public), (BODY, headers, other_public)]
    for body, h, key in cases:
        with pytest.raises(VerificationError):
            verify_standard(None, body, h, now=NOW, public_key=key)


def test_a_v1a_signature_counts_only_when_the_public_key_is_given() -> None:
    private, _ = keypair()
    secret = generate_secret()
    headers = only_v1a(standard_webhook_headers("msg_abc", NOW, BODY, secret, private))
    with pytest.raises(VerificationError):
        verify_standard(secret, BODY, headers, now=NOW)        # the secret does not vouch for v1a
    with pytest.raises(ValueError):
        verify_standard(None, BODY, headers, now=NOW)          # nothing to verify with


def test_malformed_v1a_values_and_keys_are_refused_not_crashed_on() -> None:
    _, public = keypair()
    for value in ("v1a,not*base64", "v1a,", "v1a," + base64.b64encode(b"short").decode()):
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": value}
        with pytest.raises(VerificationError):
            verify_standard(None, BODY, headers, now=NOW, public_key=public)
    for key in ("whpk_***", "whpk_" + base64.b64encode(b"x" * 31).decode()):
        with pytest.raises(VerificationError):
            ed25519_public_key(key)


def test_with_both_schemes_in_one_header_either_key_verifies_and_the_official_library_accepts_it() -> None:
    private, public = keypair()
    secret = generate_secret()
    now = int(time.time())     # the library checks the timestamp against the clock
    headers = standard_webhook_headers("msg_abc", now, BODY, secret, private)
    assert headers["webhook-signature"].startswith("v1,") and " v1a," in headers["webhook-signature"]
    assert verify_standard(secret, BODY, headers, now=now)
    assert verify_standard(None, BODY, headers, now=now, public_key=public)
    # `standardwebhooks` verifies the v1 (HMAC) value and skips v1a, which it does not implement.
    assert Webhook(secret).verify(BODY, headers) == {"orderId": "ord_1", "amount": 9900}
