"""Per-endpoint controls enforced inside a real shard: rate limits, breakers, FIFO, priority,
Retry-After, error categories, CIDR lists, Standard Webhooks and mTLS — over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook

from tests.support.certs import make_pki
from tests.support.server import Api, MittrServer
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e

PKI = make_pki(Path(tempfile.mkdtemp(prefix="mittr-pki-")))
SERVER_SHARDS = 1   # every endpoint on one shard: the round-robin claim below depends on it
SERVER_ENV = {"MITTR_ENGINE__CA_FILE": PKI.ca_file, "MITTR_ENGINE__MAX_IN_FLIGHT_PER_ENDPOINT": "1"}


async def endpoint(api: Api, url: str, types: list[str], **extra: Any) -> dict[str, Any]:
    status, body = await api.call("POST", "/api/v1/endpoints", {"url": url, "eventTypes": types, **extra})
    assert status == 201, body
    return body


async def send(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    status, created = await api.call("POST", "/api/v1/events", body, {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 201, created
    return created


def worst_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


async def test_rate_limit_caps_any_second_and_spares_other_endpoints(api: Api, sink: Sink) -> None:
    await endpoint(api, sink.url + "/slow", ["rl.slow"], rateLimitPerSec=20)
    await endpoint(api, sink.url + "/fast", ["rl.fast"])
    await asyncio.gather(*[send(api, {"eventType": t, "payload": {"i": i}})
                           for i in range(60) for t in ("rl.slow", "rl.fast")])
    fast = await sink.wait_for("/fast", 60, timeout=30)
    slow = await sink.wait_for("/slow", 60, timeout=30)
    worst = worst_window([r.at for r in slow])
    print(f"worst one-second count at 20/s: {worst}")
    assert worst <= 20 + 2, worst                           # rate + burst (a tenth of a second's worth)
    assert max(r.at for r in slow) - min(r.at for r in slow) >= 2.0
    assert max(r.at for r in fast) < max(r.at for r in slow) - 1.0, "the unlimited endpoint is not held back"


async def test_circuit_breaker_opens_probes_and_closes(api: Api, sink: Sink) -> None:
    healthy = False
    sink.script("/cb", lambda n: 200 if healthy else 500)
    ep = await endpoint(api, sink.url + "/cb", ["cb.x"], circuitThreshold=3, circuitResetMs=1500,
                        retryBackoffMs=100, retryBackoffMult=1.0, maxRetries=20)
    events = [await send(api, {"eventType": "cb.x", "payload": {"i": i}}) for i in range(4)]
    await sink.wait_for("/cb", 3)
    await asyncio.sleep(0.3)
    _, got = await api.call("GET", f"/api/v1/endpoints/{ep['id']}")
    assert got["circuitState"] == "open"
    assert len(sink.at("/cb")) == 3, "open: no attempt is made"
    await sink.wait_for("/cb", 4, timeout=5)                  # the single half-open probe (fails)
    await asyncio.sleep(0.3)
    assert len(sink.at("/cb")) == 4
    healthy = True
    for ev in events:
        await api.wait_event(ev["id"], {"delivered"}, timeout=20)
    _, got = await api.call("GET", f"/api/v1/endpoints/{ep['id']}")
    assert got["circuitState"] == "closed"
    total_attempts = 0
    for ev in events:
        _, full = await api.call("GET", f"/api/v1/events/{ev['id']}")
        total_attempts += full["attempts"]
    assert total_attempts == len(sink.at("/cb")), "attempts are counted only when something was sent"


async def test_fifo_keeps_order_per_key_and_blocks_only_the_failing_key(api: Api, sink: Sink) -> None:
    sink.script_body("/fifo", lambda n, body: 500 if b'"A1"' in body and n <= 2 else 200)
    await endpoint(api, sink.url + "/fifo", ["fifo.x"], fifo=True, fifoPartitionKey="$.data.customerId",
                   retryBackoffMs=400, retryBackoffMult=1.0)
    order = [("A", "A1"), ("B", "B1"), ("A", "A2"), ("B", "B2"), ("A", "A3"), (None, "N1"), (None, "N2")]
    for customer, name in order:
        payload = {"name": name} if customer is None else {"customerId": customer, "name": name}
        await send(api, {"eventType": "fifo.x", "payload": payload})
    got = await sink.wait_for("/fifo", len(order) + 2, timeout=20)
    names = [orjson.loads(r.body)["name"] for r in got]
    assert [n for n in names if n.startswith("A")] == ["A1", "A1", "A1", "A2", "A3"]
    assert [n for n in names if n.startswith("B")] == ["B1", "B2"]
    assert [n for n in names if n.startswith("N")] == ["N1", "N2"], "no key: one default group, in order"
    assert names.index("B2") < len(names) - 1 - names[::-1].index("A1"), "B is not held behind A's retries"


async def test_priority_one_first_under_backlog(api: Api, sink: Sink) -> None:
    ep = await endpoint(api, sink.url + "/prio", ["prio.x"])
    await api.call("POST", f"/api/v1/endpoints/{ep['id']}/pause")
    for i in range(5):
        await send(api, {"eventType": "prio.x", "payload": {"p": 10, "i": i}, "priority": 10})
    for i in range(5):
        await send(api, {"eventType": "prio.x", "payload": {"p": 1, "i": i}, "priority": 1})
    await api.call("POST", f"/api/v1/endpoints/{ep['id']}/resume")
    got = await sink.wait_for("/prio", 10)
    assert [orjson.loads(r.body)["p"] for r in got] == [1] * 5 + [10] * 5


async def test_retry_after_is_honoured(api: Api, sink: Sink) -> None:
    sink.script("/ra", lambda n: (429, {"Retry-After": "2"}, 0.0) if n == 1 else 200)
    await endpoint(api, sink.url + "/ra", ["ra.x"], retryBackoffMs=100)
    await send(api, {"eventType": "ra.x", "payload": {}})
    first, second = await sink.wait_for("/ra", 2, timeout=15)
    assert second.at - first.at >= 1.95


async def test_failures_are_categorised(api: Api, sink: Sink) -> None:
    sink.script("/hang", lambda n: (200, {}, 3.0))
    await endpoint(api, sink.url + "/hang", ["cat.hang"], timeoutMs=300, maxRetries=1)
    hang = await send(api, {"eventType": "cat.hang", "payload": {}})
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = await send(api, {"destination": f"http://127.0.0.1:{port}/", "payload": {}, "maxAttempts": 1})
    dns = await send(api, {"destination": "http://no-such-host.invalid/", "payload": {}, "maxAttempts": 1})
    expected = {hang["id"]: ("timeout", "timeout"), refused["id"]: ("refused", "failure"),
                dns["id"]: ("dns", "failure")}
    for event_id, (category, outcome) in expected.items():
        ev = await api.wait_event(event_id, {"dead"}, timeout=20)
        [attempt] = ev["deliveryAttempts"]
        assert (attempt["errorCategory"], attempt["outcome"]) == (category, outcome), attempt
        assert attempt["error"] and attempt["statusCode"] is None


async def test_cidr_lists_refuse_and_end_dead_without_retry(api: Api, sink: Sink) -> None:
    await endpoint(api, sink.url + "/blocked", ["cidr.b"], blockedCidrs=["127.0.0.0/8"], maxRetries=5)
    await endpoint(api, sink.url + "/notallowed", ["cidr.a"], allowedCidrs=["10.0.0.0/8"], maxRetries=5)
    b = await send(api, {"eventType": "cidr.b", "payload": {}})
    a = await send(api, {"eventType": "cidr.a", "payload": {}})
    for ev_id, words in ((b["id"], "blockedCidrs"), (a["id"], "allowedCidrs")):
        ev = await api.wait_event(ev_id, {"dead"})
        [attempt] = ev["deliveryAttempts"]
        assert attempt["errorCategory"] == "blocked" and words in attempt["error"]
    assert sink.at("/blocked") == [] and sink.at("/notallowed") == []


async def test_standard_webhooks_headers_verify(api: Api, sink: Sink) -> None:
    ep = await endpoint(api, sink.url + "/sw", ["sw.x"], standardWebhooks=True)
    status, rotated = await api.call("POST", f"/api/v1/endpoints/{ep['id']}/standard-webhooks/ed25519")
    assert status == 200 and rotated["standardWebhooksPublicKey"].startswith("whpk_")
    await asyncio.sleep(0.3)   # the shard hears about the new key by NOTIFY
    created = await send(api, {"eventType": "sw.x", "payload": {"hello": "world"}})
    [req] = await sink.wait_for("/sw", 1)
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert headers["webhook-id"] == f"msg_{uuid.UUID(created['id']).hex}"
    assert "x-mittr-signature" in headers
    Webhook(ep["signingSecret"]).verify(req.body, headers)   # raises if the v1 HMAC is wrong
    v1a = [p.split(",", 1)[1] for p in headers["webhook-signature"].split() if p.startswith("v1a,")]
    assert v1a, headers["webhook-signature"]
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(rotated["standardWebhooksPublicKey"][5:]))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + req.body
    public.verify(base64.b64decode(v1a[0]), signed)


async def test_mtls_endpoint_presents_client_certificate(api: Api, server: MittrServer) -> None:
    sink = await Sink(ssl_context=PKI.server_context(require_client_cert=True)).start()
    try:
        with_cert = await endpoint(api, sink.url + "/mtls", ["mtls.x"])
        await endpoint(api, sink.url + "/nocert", ["mtls.none"], maxRetries=1)
        status, body = await api.call("POST", f"/api/v1/endpoints/{with_cert['id']}/mtls",
                                      {"certPem": PKI.client_cert, "keyPem": PKI.other_client_key})
        assert status == 400 and body["error"].startswith("keyPem")
        status, body = await api.call("POST", f"/api/v1/endpoints/{with_cert['id']}/mtls",
                                      {"certPem": PKI.client_cert, "keyPem": PKI.client_key})
        assert status == 200 and body["hasMtls"] is True and "mtlsKey" not in body
        await asyncio.sleep(0.3)
        ok = await send(api, {"eventType": "mtls.x", "payload": {}})
        bad = await send(api, {"eventType": "mtls.none", "payload": {}})
        await api.wait_event(ok["id"], {"delivered"})
        await api.wait_event(bad["id"], {"dead"})
        [req] = sink.at("/mtls")
        assert req.peer_cert is not None and sink.at("/nocert") == []
        conn = await asyncpg.connect(server.database_url)
        try:
            stored = await conn.fetchrow("SELECT mtls_key, signing_secret FROM endpoints WHERE id = $1",
                                         uuid.UUID(with_cert["id"]))
        finally:
            await conn.close()
        assert stored["mtls_key"].startswith("enc:v1:") and "PRIVATE KEY" not in stored["mtls_key"]
        assert stored["signing_secret"].startswith("enc:v1:")
        status, _ = await api.call("DELETE", f"/api/v1/endpoints/{with_cert['id']}/mtls")
        assert status == 204
        _, after = await api.call("GET", f"/api/v1/endpoints/{with_cert['id']}")
        assert after["hasMtls"] is False
    finally:
        await sink.stop()
