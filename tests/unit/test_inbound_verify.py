"""Inbound verification modes: vectors signed here with each documented algorithm, the platforms' own
libraries cross-checking, and every preset of the catalogue signed and verified."""

from __future__ import annotations

import base64
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.signature import SignatureVerifier
from svix.webhooks import Webhook as SvixWebhook
from twilio.request_validator import RequestValidator

from control.policy.inbound_presets import catalogue, markdown, parse
from control.policy.inbound_verify import MODES, InboundRequest, VerifyError, check_params, check_secrets, verify
from tests.support.inbound_sign import SECRETS, secrets_for, sign

URL = "https://hooks.example.com/inbound/p1"
NOW = 1_750_000_000
BODY = b'{"id": "evt_1", "type": "charge.succeeded", "data": {"amount": 42}}'
PRESETS = catalogue()


def request(headers: dict[str, str], body: bytes = BODY, query: str = "", now: float = NOW,
            url: str = URL) -> InboundRequest:
    full = url + ("?" + query if query else "")
    q = dict(pair.split("=", 1) for pair in query.split("&") if pair) if query else {}
    return InboundRequest(body, {k.lower(): v for k, v in headers.items()}, full, now, q)


def signed(source: str, body: bytes = BODY, secrets: dict[str, str] | None = None,
           now: int = NOW, content_type: str = "application/json") -> tuple[InboundRequest, dict[str, str]]:
    p = PRESETS[source]
    sec = secrets or secrets_for(p.mode, p.params)
    headers, query = sign(p.mode, p.params, sec, body, URL, now, content_type=content_type)
    return request(headers, body, query), secrets_for(p.mode, p.params)


def check(source: str, req: InboundRequest, secrets: dict[str, str]) -> None:
    p = PRESETS[source]
    verify(p.mode, p.params, secrets, req)


def test_catalogue_has_at_least_130_presets_over_every_mode() -> None:
    assert len(PRESETS) >= 130
    assert {p.mode for p in PRESETS.values()} == set(MODES)


@pytest.mark.parametrize("source", list(PRESETS))
def test_every_preset_verifies_its_own_signature_and_refuses_a_tampered_body(source: str) -> None:
    req, secrets = signed(source)
    check(source, req, secrets)
    if PRESETS[source].mode == "none":
        return
    tampered = InboundRequest(BODY.replace(b"42", b"43"), req.headers, req.url, req.now, req.query)
    if PRESETS[source].mode in ("basic_auth", "token"):
        wrong = {k: v + "x" for k, v in secrets.items()}
        with pytest.raises(VerifyError):
            check(source, req, wrong)
        return
    with pytest.raises(VerifyError):
        check(source, tampered, secrets)
    with pytest.raises(VerifyError):
        check(source, req, {"secret": secrets["secret"][:-2] + ("AA" if secrets["secret"][-2:] != "AA" else "BB")})


@pytest.mark.parametrize("source", ["slack", "stripe", "svix", "standard-webhooks", "zoom", "paddle", "webflow",
                                    "workos"])
def test_timestamped_modes_refuse_an_old_or_future_timestamp(source: str) -> None:
    for skew in (-301, 301):
        req, secrets = signed(source, now=NOW + skew)
        with pytest.raises(VerifyError, match="tolerance"):
            check(source, request(dict(req.headers), query=req.url.partition("?")[2], now=NOW), secrets)
    req, secrets = signed(source, now=NOW - 299)
    check(source, req, secrets)


@pytest.mark.parametrize("source", ["github", "shopify", "stripe", "slack", "svix", "basic_auth", "twilio"])
def test_a_missing_header_is_refused(source: str) -> None:
    if source == "basic_auth":
        source = "generic-basic-auth"
    with pytest.raises(VerifyError):
        check(source, request({"Content-Type": "application/json"}), secrets_for(PRESETS[source].mode,
                                                                                 PRESETS[source].params))


# --- the platforms' own libraries

def test_stripe_library_signature_is_accepted_and_ours_passes_stripe() -> None:
    secret = SECRETS["stripe"]["secret"]
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), secret, timestamp=NOW)
    verify("stripe", PRESETS["stripe"].params, {"secret": secret}, request({"Stripe-Signature": header}))
    ours, _ = sign("stripe", PRESETS["stripe"].params, {"secret": secret}, BODY, URL, int(time.time()))
    assert stripe.WebhookSignature.verify_header(BODY.decode(), ours["Stripe-Signature"], secret, tolerance=300)
    # Stripe lists one v1 per active secret during a rotation: any one may match.
    rotated = f"t={NOW},v1={'0' * 64}," + header.split(",")[1]
    verify("stripe", PRESETS["stripe"].params, {"secret": secret}, request({"Stripe-Signature": rotated}))
    with pytest.raises(VerifyError):
        verify("stripe", PRESETS["stripe"].params, {"secret": secret + "x"}, request({"Stripe-Signature": header}))


@pytest.mark.parametrize("library", [SvixWebhook, standardwebhooks.Webhook])
def test_svix_and_standardwebhooks_libraries(library: Any) -> None:
    secret = SECRETS["standard_webhooks"]["secret"]
    signature = library(secret).sign("msg_abc", dt.datetime.fromtimestamp(NOW, dt.UTC), BODY.decode())
    prefix = "svix-" if library is SvixWebhook else "webhook-"
    source = "svix" if library is SvixWebhook else "standard-webhooks"
    headers = {prefix + "id": "msg_abc", prefix + "timestamp": str(NOW), prefix + "signature": signature}
    verify("standard_webhooks", PRESETS[source].params, {"secret": secret}, request(headers))
    now = int(time.time())
    ours, _ = sign("standard_webhooks", PRESETS["standard-webhooks"].params, {"secret": secret}, BODY, URL, now)
    standardwebhooks.Webhook(secret).verify(BODY.decode(), ours)
    with pytest.raises(VerifyError):
        verify("standard_webhooks", PRESETS[source].params, {"secret": secret}, request(headers, BODY + b" "))


def test_slack_sdk_signature_is_accepted_and_ours_passes_slack_sdk() -> None:
    secret = SECRETS["hmac_timestamped"]["secret"]
    sig = SignatureVerifier(secret).generate_signature(timestamp=str(NOW), body=BODY)
    assert sig is not None
    headers = {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": str(NOW)}
    verify("hmac_timestamped", PRESETS["slack"].params, {"secret": secret}, request(headers))
    now = int(time.time())
    ours, _ = sign("hmac_timestamped", PRESETS["slack"].params, {"secret": secret}, BODY, URL, now)
    assert SignatureVerifier(secret).is_valid(BODY, str(now), ours["X-Slack-Signature"])


def test_twilio_library_form_and_json_bodies() -> None:
    token = SECRETS["twilio"]["secret"]
    validator = RequestValidator(token)
    form = b"To=%2B15551234567&From=%2B15557654321&Body=Hello+there&MessageSid=SM1"
    params = {"To": "+15551234567", "From": "+15557654321", "Body": "Hello there", "MessageSid": "SM1"}
    sig = validator.compute_signature(URL, params)
    headers = {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"}
    verify("twilio", {}, {"secret": token}, request(headers, form))
    with pytest.raises(VerifyError):
        verify("twilio", {}, {"secret": token}, request(headers, form.replace(b"Hello", b"Hallo")))
    ours, _ = sign("twilio", {}, {"secret": token}, form, URL, NOW, content_type="application/x-www-form-urlencoded")
    assert validator.validate(URL, params, ours["X-Twilio-Signature"])
    # A JSON body: the URL carries bodySHA256, the library validates both.
    hdrs, query = sign("twilio", {}, {"secret": token}, BODY, URL, NOW)
    assert validator.validate(f"{URL}?{query}", BODY.decode(), hdrs["X-Twilio-Signature"])
    verify("twilio", {}, {"secret": token}, request(hdrs, BODY, query))
    with pytest.raises(VerifyError, match="bodySHA256"):
        verify("twilio", {}, {"secret": token}, request(hdrs, BODY + b" ", query))
    # Configured with an explicit default port: the library's and our port variants agree.
    sig_port = validator.compute_signature("https://hooks.example.com:443/inbound/p1", params)
    verify("twilio", {}, {"secret": token}, request({**headers, "X-Twilio-Signature": sig_port}, form))


# --- documented vectors computed by hand

def test_github_documented_example() -> None:
    # GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!".
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    secret = {"secret": "It's a Secret to Everybody"}
    assert verify("hmac", PRESETS["github"].params, secret,
                  request({"X-Hub-Signature-256": sig}, b"Hello, World!")) is None
    with pytest.raises(VerifyError):     # the documented signature does not fit another body
        verify("hmac", PRESETS["github"].params, secret, request({"X-Hub-Signature-256": sig}, b"Hello, World?"))


def test_basic_auth_and_tokens_compare_whole_values() -> None:
    ok = "Basic " + base64.b64encode(b"hook:p@ss:word").decode()
    secrets = SECRETS["basic_auth"]
    verify("basic_auth", {}, secrets, request({"Authorization": ok}))
    for bad in ("Basic " + base64.b64encode(b"hook:p@ss").decode(), "Bearer x", "Basic !!!"):
        with pytest.raises(VerifyError):
            verify("basic_auth", {}, secrets, request({"Authorization": bad}))
    verify("token", {"query": "token"}, {"token": "tok-123"}, request({}, query="token=tok-123"))
    with pytest.raises(VerifyError):
        verify("token", {"query": "token"}, {"token": "tok-123"}, request({}, query="token=tok-12"))


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=512), pos=st.integers(min_value=0), source=st.sampled_from(
    ["github", "shopify", "slack", "stripe", "svix", "paddle", "square", "trello", "twitch", "airtable", "close"]))
def test_any_body_round_trips_and_any_flipped_byte_is_refused(body: bytes, pos: int, source: str) -> None:
    req, secrets = signed(source, body)
    check(source, req, secrets)
    if body:
        i = pos % len(body)
        flipped = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
        with pytest.raises(VerifyError):
            check(source, InboundRequest(flipped, req.headers, req.url, req.now, req.query), secrets)


# --- the catalogue

def test_catalogue_refuses_bad_entries() -> None:
    good = {"source": "x", "name": "X", "description": "d", "mode": "hmac",
            "params": {"algorithm": "sha256", "encoding": "hex", "header": "X-Sig"}}
    assert "x" in parse({"preset": [good]})
    for bad, msg in [({**good, "mode": "rsa"}, "unknown mode"), ({**good, "source": "Bad Name"}, "source"),
                     ({**good, "params": {"algorithm": "md5", "encoding": "hex", "header": "h"}}, "algorithm"),
                     ({**good, "params": {"encoding": "hex", "header": "h"}}, "missing"),
                     ({**good, "event_type": "$.["}, "event_type"), ({**good, "colour": "red"}, "unknown key")]:
        with pytest.raises(ValueError, match=msg):
            parse({"preset": [bad]})
    with pytest.raises(ValueError, match="twice"):
        parse({"preset": [good, good]})
    with pytest.raises(ValueError):
        check_params("token", {})


def test_secrets_are_checked_per_mode() -> None:
    assert check_secrets("basic_auth", {"username": "u", "password": "p"}) == {"username": "u", "password": "p"}
    with pytest.raises(ValueError, match="password"):
        check_secrets("basic_auth", {"username": "u"})
    with pytest.raises(ValueError, match="whsec_"):
        check_secrets("standard_webhooks", {"secret": "whsec_not base64!"})
    assert check_secrets("none", {}) == {}


def test_docs_are_generated_from_the_catalogue() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "inbound-presets.md"
    assert docs.read_text() == markdown(PRESETS), \
        "docs/inbound-presets.md is stale: python -m control.policy.inbound_presets > docs/inbound-presets.md"
