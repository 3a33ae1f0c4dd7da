"""Sub-accounts end to end: a real `mittr serve`, a real sink. Two customers' portals each make an
endpoint; the workspace sends one customer's event; only that customer's endpoint receives it, its
portal sees the attempt, the other portal sees nothing; a dead event is retried from the portal and
delivered; a revoked session is refused on its next request."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.server import Api
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e
SERVER_SHARDS = 1


async def open_portal(api: Api, sub_id: str) -> tuple[str, str]:
    """(sub-account id, portal session token), through the public routes only."""
    status, sub = await api.call("POST", "/api/v1/sub-accounts", {"name": sub_id, "subID": sub_id})
    assert status == 201, sub
    status, minted = await api.call("POST", f"/api/v1/sub-accounts/{sub['id']}/sessions", {"ttlSeconds": 600})
    assert status == 201, minted
    url = urlsplit(minted["url"])
    assert f"{url.scheme}://{url.netloc}" == api.base
    token = parse_qs(url.query)["token"][0]
    status, session = await api.call("POST", "/sub-account-api/auth/exchange", {"token": token}, key="")
    assert status == 200, session
    return sub["id"], session["token"]


async def as_portal(api: Api, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await api.call(method, "/sub-account-api" + path, body, {"Authorization": f"Bearer {token}"}, key="")


async def wait_portal_event(api: Api, token: str, event_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        code, body = await as_portal(api, token, "GET", f"/events/{event_id}")
        assert code == 200, body
        if body["status"] == status:
            return body
        assert loop.time() < deadline, f"event {event_id} stuck in {body['status']}"
        await asyncio.sleep(0.2)


async def test_delivery_stays_inside_the_sub_account(api: Api, sink: Sink) -> None:
    a, token_a = await open_portal(api, "cust_a")
    _, token_b = await open_portal(api, "cust_b")
    for token, path in ((token_a, "/a"), (token_b, "/b")):
        status, ep = await as_portal(api, token, "POST", "/endpoints",
                                     {"url": sink.url + path, "eventTypes": ["order.*"]})
        assert status == 201, ep
    status, ws = await api.call("POST", "/api/v1/endpoints", {"url": sink.url + "/ws", "eventTypes": ["order.*"]})
    assert status == 201, ws

    status, ev = await api.call("POST", "/api/v1/events", {"eventType": "order.paid", "payload": {"n": 1}},
                                {"X-Idempotency-Key": str(uuid.uuid4()), "X-Sub-Account-ID": a})
    assert status == 201, ev
    seen = await wait_portal_event(api, token_a, ev["id"], "delivered")
    assert [d["statusCode"] for d in seen["deliveryAttempts"]] == [200]
    assert [json.loads(r.body)["n"] for r in sink.at("/a")] == [1]
    assert sink.at("/b") == [] and sink.at("/ws") == []
    status, mine = await as_portal(api, token_a, "GET", f"/events/{ev['id']}/deliveries")
    assert status == 200 and mine["count"] == 1
    assert (await as_portal(api, token_b, "GET", f"/events/{ev['id']}/deliveries"))[0] == 404
    status, listed = await as_portal(api, token_b, "GET", "/events")
    assert status == 200 and listed["data"] == []

    # a dead event of a's, retried from a's portal, is delivered
    sink.script("/a", lambda n: 500 if n == 2 else 200)
    status, ev2 = await api.call("POST", "/api/v1/events",
                                 {"eventType": "order.paid", "payload": {"n": 2}, "maxAttempts": 1},
                                 {"X-Idempotency-Key": str(uuid.uuid4()), "X-Sub-Account-ID": a})
    assert status == 201, ev2
    await wait_portal_event(api, token_a, ev2["id"], "dead")
    status, retried = await as_portal(api, token_a, "POST", f"/events/{ev2['id']}/retry")
    assert status == 200, retried
    seen = await wait_portal_event(api, token_a, ev2["id"], "delivered")
    assert [d["statusCode"] for d in seen["deliveryAttempts"]] == [500, 200]

    # revoked: refused on the very next request
    status, _ = await api.call("DELETE", f"/api/v1/sub-accounts/{a}/sessions")
    assert status == 200
    status, body = await as_portal(api, token_a, "GET", "/events")
    assert status == 401 and body["code"] == "SESSION_EXPIRED"
