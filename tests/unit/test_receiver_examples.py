"""The receiver examples accept what Mittr signs and refuse the rest (Flask and Django through their
test clients, aiohttp on a real socket, BlackSheep through its TestClient, Starlette and FastAPI
through httpx's ASGI transport)."""

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


def tampered() -> dict[str, str]:
    """Headers signed for another body: what a forger or a corrupting proxy would send."""
    return headers(body=BODY + b" ")


async def test_blacksheep_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from blacksheep.contents import Content
    from blacksheep.testing import TestClient

    from examples.receivers import blacksheep_receiver
    monkeypatch.setattr(blacksheep_receiver, "SECRET", SECRET)
    monkeypatch.setattr(blacksheep_receiver, "received", [])
    app = blacksheep_receiver.make_app()
    await app.start()
    client = TestClient(app)

    async def post(h: dict[str, str]) -> int:
        response = await client.post("/webhooks", headers={k: v for k, v in h.items() if k != "Content-Type"},
                                     content=Content(b"application/json", BODY))
        return response.status

    assert await post(headers()) == 204
    assert await post(tampered()) == 401
    assert await post(headers("wrong")) == 401
    assert blacksheep_receiver.received == [("ev-1", {"orderId": "ord_1"})]


@pytest.mark.parametrize("which", ["starlette_app", "fastapi_app"])
async def test_starlette_and_fastapi_examples(monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    import httpx

    from examples.receivers import starlette_receiver
    monkeypatch.setattr(starlette_receiver, "SECRET", SECRET)
    monkeypatch.setattr(starlette_receiver, "received", [])
    transport = httpx.ASGITransport(app=getattr(starlette_receiver, which))
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        assert (await client.post("/webhooks", content=BODY, headers=headers())).status_code == 204
        assert (await client.post("/webhooks", content=BODY, headers=tampered())).status_code == 401
        stale = {**headers(), "X-Mittr-Timestamp": "1"}
        assert (await client.post("/webhooks", content=BODY, headers=stale)).status_code == 401
    assert starlette_receiver.received == [("ev-1", {"orderId": "ord_1"})]


def test_django_example(monkeypatch: pytest.MonkeyPatch) -> None:
    import django
    from django.test import Client

    from examples.receivers import django_receiver  # configures settings before django.setup()

    django.setup()
    monkeypatch.setattr(django_receiver, "SECRET", SECRET)
    monkeypatch.setattr(django_receiver, "received", [])
    # enforce_csrf_checks: the view must stand without a CSRF token, as Mittr sends none.
    client = Client(enforce_csrf_checks=True)

    def post(h: dict[str, str]) -> int:
        extra = {k: v for k, v in h.items() if k != "Content-Type"}
        return client.post("/webhooks", data=BODY, content_type="application/json", headers=extra).status_code

    assert post(headers()) == 204
    assert post(tampered()) == 401
    assert post(headers("wrong")) == 401
    assert client.get("/webhooks").status_code == 405
    assert django_receiver.received == [("ev-1", {"orderId": "ord_1"})]
