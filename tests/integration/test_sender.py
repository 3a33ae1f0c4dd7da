"""The HTTP edge against real sockets: SSRF checks at connect time, error categories, mTLS."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from control.policy.ssrf import AddressPolicy
from engine.sender import Senders
from tests.support.certs import make_pki
from tests.support.sink import Sink

OPEN = AddressPolicy.build(allow_private=True)
CLOSED = AddressPolicy.build(allow_private=False)


@pytest.fixture
async def senders(tmp_path: Path) -> Senders:
    s = Senders(16, 1024)
    yield s  # type: ignore[misc]
    await s.close()


async def test_private_addresses_refused_at_connect_by_literal_and_by_name(senders: Senders) -> None:
    sink = await Sink().start()
    try:
        for url in (f"{sink.url}/x", f"http://localhost:{sink.port}/x"):
            r = await senders.default.send(url, b"{}", {}, 2000, CLOSED)
            assert r.category == "blocked" and r.permanent and "internal range" in r.error, r
        assert sink.received == []
        ok = await senders.default.send(f"{sink.url}/x", b"{}", {}, 2000, OPEN)
        assert ok.status_code == 200 and ok.outcome == "success"
    finally:
        await sink.stop()


async def test_connection_reuse_never_bypasses_an_endpoint_policy(senders: Senders) -> None:
    sink = await Sink().start()
    try:
        assert (await senders.for_policy(OPEN).send(f"{sink.url}/a", b"{}", {}, 2000, OPEN)).status_code == 200
        strict = AddressPolicy.build(True, blocked=["127.0.0.0/8"])
        r = await senders.for_policy(strict).send(f"{sink.url}/b", b"{}", {}, 2000, strict)
        assert r.category == "blocked"
        assert len(sink.at("/b")) == 0
    finally:
        await sink.stop()


async def test_error_categories(senders: Senders) -> None:
    sink = await Sink().start()
    sink.script("/slow", lambda n: (200, {}, 2.0))
    sink.script("/busy", lambda n: (429, {"Retry-After": "7"}, 0.0))
    try:
        r = await senders.default.send(f"{sink.url}/slow", b"{}", {}, 200, OPEN)
        assert (r.category, r.outcome, r.status_code) == ("timeout", "timeout", None) and "timed out" in r.error
        r = await senders.default.send(f"{sink.url}/busy", b"{}", {}, 2000, OPEN)
        assert (r.category, r.status_code, r.retry_after) == ("4xx", 429, "7")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        r = await senders.default.send(f"http://127.0.0.1:{closed_port}/", b"{}", {}, 2000, OPEN)
        assert r.category == "refused" and r.outcome == "failure"
        r = await senders.default.send("http://nonexistent.invalid/", b"{}", {}, 5000, OPEN)
        assert r.category == "dns", r
    finally:
        await sink.stop()


async def test_mtls_client_certificate_is_presented(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    senders = Senders(16, 1024, ca_file=pki.ca_file)
    sink = await Sink(ssl_context=pki.server_context(require_client_cert=True)).start()
    try:
        cfg = SimpleNamespace(id=uuid.uuid4(), version=1, mtls_cert=pki.client_cert, mtls_key=pki.client_key)
        r = await senders.default.send(f"{sink.url}/m", b"{}", {}, 3000, OPEN, senders.client_tls(cfg))
        assert r.status_code == 200, r
        [got] = sink.at("/m")
        assert got.peer_cert is not None
        assert ((("commonName", "mittr client"),),) == tuple(got.peer_cert["subject"])  # type: ignore[arg-type]
        r = await senders.default.send(f"{sink.url}/m", b"{}", {}, 3000, OPEN)
        assert r.outcome == "failure" and len(sink.at("/m")) == 1, "no client certificate, no delivery"
        stranger = SimpleNamespace(id=uuid.uuid4(), version=1, mtls_cert=pki.other_client_cert,
                                   mtls_key=pki.other_client_key)
        r = await senders.default.send(f"{sink.url}/m", b"{}", {}, 3000, OPEN, senders.client_tls(stranger))
        assert r.outcome == "failure" and len(sink.at("/m")) == 1
    finally:
        await sink.stop()
        await senders.close()
