"""Inbound webhooks end to end: a platform's signed POST to a real `mittr serve` reaches a real sink
with the right event type; a tampered, wrongly keyed or stale one is 401 and reaches nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import stripe

from control.policy.inbound_presets import catalogue
from tests.support.inbound_sign import SECRETS, sign
from tests.support.server import Api, MittrServer
from tests.support.sink import Sink

BODY = orjson.dumps({"id": "evt_e2e_1", "type": "invoice.paid", "data": {"object": {"amount": 1200}}})


async def endpoint(api: Api, url: str, types: list[str]) -> dict[str, Any]:
    status, body = await api.call("POST", "/api/v1/endpoints", {"url": url, "eventTypes": types})
    assert status == 201, body
    return dict(body)


async def post(http: aiohttp.ClientSession, server: MittrServer, suffix: str, body: bytes,
               headers: dict[str, str]) -> tuple[int, Any]:
    async with http.post(f"{server.url}/inbound/{suffix}", data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_stripe_and_github_deliver_to_a_sink(api: Api, server: MittrServer, http: aiohttp.ClientSession,
                                                   sink: Sink) -> None:
    paid = await endpoint(api, sink.url + "/paid", ["invoice.*"])
    status, _ = await api.call("POST", "/api/v1/inbound-endpoints", {
        "name": "Stripe", "pathSuffix": "stripe-e2e", "source": "stripe", "sourceConfig": SECRETS["stripe"]})
    assert status == 201
    # Signed by Stripe's own library.
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRETS["stripe"]["secret"])
    status, out = await post(http, server, "stripe-e2e", BODY,
                             {"Stripe-Signature": header, "Content-Type": "application/json"})
    assert status == 202 and out["eventType"] == "invoice.paid", out
    got = await sink.wait_for("/paid", 1)
    assert orjson.loads(got[0].body) == orjson.loads(BODY)

    gh = await endpoint(api, sink.url + "/gh", ["github.*"])
    status, _ = await api.call("POST", "/api/v1/inbound-endpoints", {
        "name": "GitHub", "pathSuffix": "github-e2e", "source": "github", "sourceConfig": SECRETS["hmac"],
        "destinationIds": [gh["id"]], "eventTypeMapping": "$.headers.x-github-event"})
    assert status == 201
    p = catalogue()["github"]
    headers, _ = sign(p.mode, p.params, SECRETS["hmac"], BODY, f"{server.url}/inbound/github-e2e", int(time.time()))
    headers.update({"X-GitHub-Event": "push", "X-GitHub-Delivery": "gh-1"})
    status, out = await post(http, server, "github-e2e", BODY, headers)
    assert status == 202 and out["eventType"] == "push", out
    got = await sink.wait_for("/gh", 1)
    assert {k.lower(): v for k, v in got[0].headers.items()}["x-github-delivery"] == "gh-1"
    event = await api.wait_event(out["eventId"], {"delivered"})
    assert event["eventType"] == "push" and event["headers"]["x-github-event"] == "push"
    assert paid["id"] != gh["id"]


async def test_bad_signatures_deliver_nothing(api: Api, server: MittrServer, http: aiohttp.ClientSession,
                                              sink: Sink) -> None:
    await endpoint(api, sink.url + "/never", ["invoice.*", "slack.*", "event_callback"])
    status, _ = await api.call("POST", "/api/v1/inbound-endpoints", {
        "name": "Slack", "pathSuffix": "slack-e2e", "source": "slack", "sourceConfig": SECRETS["hmac_timestamped"]})
    assert status == 201
    p = catalogue()["slack"]
    now = int(time.time())
    url = f"{server.url}/inbound/slack-e2e"
    tampered, _ = sign(p.mode, p.params, SECRETS["hmac_timestamped"], BODY, url, now)
    wrong, _ = sign(p.mode, p.params, {"secret": "not-it"}, BODY, url, now)
    stale, _ = sign(p.mode, p.params, SECRETS["hmac_timestamped"], BODY, url, now - 3600)
    for headers, body in ((tampered, BODY + b"\n"), (wrong, BODY), (stale, BODY)):
        status, out = await post(http, server, "slack-e2e", body, headers)
        assert status == 401, out
    assert (await post(http, server, "no-such-path", BODY, {}))[0] == 404
    await asyncio.sleep(1.0)
    assert sink.at("/never") == []
