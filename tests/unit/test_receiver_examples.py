"""The receiver examples accept what Mittr signs and refuse the rest (Flask through its test client,
aiohttp on a real socket)."""

from __future__ import annotations

import time

import aiohttp
import pytest
from aiohttp import web

from control.policy.signing import sign_v1

SECRET, BODY = "example-secret", b'{"orderId": "ord_1"}'


def headers(secret: str = SECRET, body: bytes = BODY) -> dict[str, str]:
    return {"X-Mittr-Signature": sign_v1(secret.encode(), body), "X-Mittr-Timestamp": str(int(time.time())),
            "X-Mittr-Event-ID": "ev-1", "Content-Type": "application/json"}


def test_flask_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from examples.receivers import flask_receiver
    monkeypatch.setattr(flask_receiver, "SECRET", SECRET)
    client = flask_receiver.app.test_client()
    assert client.post("/webhooks", data=BODY, headers=headers()).status_code == 204
    assert client.post("/webhooks", data=BODY + b" ", headers=headers()).status_code == 400
    assert client.post("/webhooks", data=BODY, headers=headers("wrong")).status_code == 400
    assert flask_receiver.seen == {"ev-1"}


async def test_aiohttp_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from examples.receivers import aiohttp_receiver
    monkeypatch.setattr(aiohttp_receiver, "SECRET", SECRET)
    app = aiohttp_receiver.make_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as s:
            url = f"http://127.0.0.1:{port}/webhooks"
            async with s.post(url, data=BODY, headers=headers()) as r:
                assert r.status == 204
            async with s.post(url, data=BODY, headers={**headers(), "X-Mittr-Timestamp": "1"}) as r:
                assert r.status == 400
        assert app[aiohttp_receiver.RECEIVED] == [("ev-1", {"orderId": "ord_1"})]
    finally:
        await runner.cleanup()
