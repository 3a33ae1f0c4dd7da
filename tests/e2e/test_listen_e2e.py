"""`mittr listen` as a subprocess against a real `mittr serve`: events sent through the API reach a
local aiohttp receiver signed as a push would be (checked with mittr_client.verify), a 2xx acks
them, a 500 leaves the event to come back, and SIGINT deletes the endpoint it made (or keeps it
with --keep, for the next run to reuse)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from mittr_client import AsyncClient, NotFound, verify
from tests.support.server import Api, MittrServer

pytestmark = pytest.mark.e2e
SERVER_ENV = {"MITTR_POLL__VISIBILITY_TIMEOUT_S": "2"}   # a refused event comes back within seconds


class Receiver:
    """A local webhook receiver: records each request, answers 500 to the event ids in `fail_once`
    the first time."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, dict[str, str]]] = []
        self.fail_once: set[str] = set()
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        self.got.append((body, headers))
        self.arrived.set()
        event_id = headers.get("X-Mittr-Event-ID", "")
        if event_id in self.fail_once:
            self.fail_once.discard(event_id)
            return web.Response(status=500, text="not yet")
        return web.Response(status=204)

    def for_event(self, event_id: str) -> list[tuple[bytes, dict[str, str]]]:
        return [(b, h) for b, h in self.got if h.get("X-Mittr-Event-ID") == event_id]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield rec, f"http://127.0.0.1:{port}/webhooks"
    finally:
        await runner.cleanup()


class Listen:
    """`mittr listen` in its own process; its stdout lines collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc, self.lines = proc, []  # type: list[str]
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, server: MittrServer, forward_to: str, config: Path, *extra: str) -> Listen:
        env = {**os.environ, "XDG_CONFIG_HOME": str(config), "MITTR_API_KEY": server.admin_key}
        env.pop("MITTR_URL", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "control.cli", "listen", "--forward-to", forward_to, "--server", server.url,
            *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
        listen = cls(proc)
        await listen.wait_for("Ready.")
        return listen

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode().rstrip("\n"))

    async def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            hits = [line for line in self.lines if text in line]
            if len(hits) >= count:
                return hits
            if loop.time() > deadline or (self.proc.returncode is not None and self.reader.done()):
                raise AssertionError(f"no {count}x {text!r} in mittr listen's output:\n" + "\n".join(self.lines))
            await asyncio.sleep(0.05)

    def value(self, prefix: str) -> str:
        return next(line.split(prefix, 1)[1].split()[0] for line in self.lines if prefix in line)

    async def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.proc.wait(), 60)
        await asyncio.wait_for(self.reader, 10)
        return code


async def test_listen_forwards_signed_events_acks_2xx_and_cleans_up(
        server: MittrServer, api: Api, receiver: tuple[Receiver, str], tmp_path: Path) -> None:
    rec, url = receiver
    listen = await Listen.start(server, url, tmp_path, "--events", "order.*")
    try:
        endpoint_id, secret = listen.value("endpoint "), listen.value("signing secret: ")
        stored = json.loads((tmp_path / "mittr" / "listen.json").read_text())
        assert stored == {f"{server.url}|{endpoint_id}": secret}
        assert oct((tmp_path / "mittr" / "listen.json").stat().st_mode & 0o777) == "0o600"
        async with AsyncClient(server.url, server.admin_key) as c:
            ep = await c.endpoints.get(endpoint_id)
            assert ep.delivery_mode == "poll" and ep.event_types == ["order.*"]
            ok = await c.events.create({"orderId": "ord_1", "note": "café"}, event_type="order.created",
                                       headers={"X-Tenant": "acme"})
            refused = await c.events.create({"orderId": "ord_2"}, event_type="order.updated")
            rec.fail_once.add(refused.id)
            other = await c.events.create({"x": 1}, event_type="invoice.paid")   # not subscribed
            await api.wait_event(ok.id, {"delivered"}, timeout=60)
            await api.wait_event(refused.id, {"delivered"}, timeout=60)   # 500 first, taken the second time
        [(body, headers)] = rec.for_event(ok.id)
        assert verify(secret, body, headers, tolerance=300) == {"orderId": "ord_1", "note": "café"}
        assert headers["X-Mittr-Attempt"] == "1" and headers["X-Tenant"] == "acme"
        assert headers["Content-Type"] == "application/json"
        tries = rec.for_event(refused.id)
        assert [h["X-Mittr-Attempt"] for _, h in tries] == ["1", "2"]
        assert all(verify(secret, b, h) == {"orderId": "ord_2"} for b, h in tries)
        assert rec.for_event(other.id) == []
        await listen.wait_for(f"{ok.id}  -> 204")
        [first] = await listen.wait_for(f"{refused.id}  -> 500")
        assert "not acked" in first and "order.updated" in first
        await listen.wait_for(f"{refused.id}  -> 204", timeout=30)
    finally:
        code = await listen.interrupt()
    assert code == 0, listen.lines
    assert any(f"endpoint {endpoint_id} deleted" in line for line in listen.lines)
    async with AsyncClient(server.url, server.admin_key) as c:
        with pytest.raises(NotFound):
            await c.endpoints.get(endpoint_id)
    assert json.loads((tmp_path / "mittr" / "listen.json").read_text()) == {}


async def test_keep_leaves_the_endpoint_and_the_next_run_reuses_it(
        server: MittrServer, api: Api, receiver: tuple[Receiver, str], tmp_path: Path) -> None:
    rec, url = receiver
    first = await Listen.start(server, url, tmp_path, "--events", "ship.*", "--keep")
    endpoint_id, secret = first.value("endpoint "), first.value("signing secret: ")
    assert await first.interrupt() == 0
    async with AsyncClient(server.url, server.admin_key) as c:
        assert (await c.endpoints.get(endpoint_id)).status == "active"
        waiting = await c.events.create({"box": 7}, event_type="ship.sent")   # queued while nobody listens
    again = await Listen.start(server, url, tmp_path, "--events", "ship.*")
    try:
        assert again.value("endpoint ") == endpoint_id and "reused" in again.lines[1]
        assert again.value("signing secret: ") == secret
        await api.wait_event(waiting.id, {"delivered"}, timeout=60)
        [(body, headers)] = rec.for_event(waiting.id)
        assert verify(secret, body, headers) == {"box": 7}
    finally:
        assert await again.interrupt() == 0
    async with AsyncClient(server.url, server.admin_key) as c:   # made by the first run: not this one's to delete
        assert (await c.endpoints.get(endpoint_id)).id == endpoint_id
    elsewhere = await Listen.start(server, url, tmp_path / "other", "--events", "ship.*")   # no stored secret
    try:
        rotated = elsewhere.value("signing secret: ")
        assert elsewhere.value("endpoint ") == endpoint_id and rotated != secret
        async with AsyncClient(server.url, server.admin_key) as c:
            later = await c.events.create({"box": 8}, event_type="ship.sent")
        await api.wait_event(later.id, {"delivered"}, timeout=60)
        [(body, headers)] = rec.for_event(later.id)
        assert verify(rotated, body, headers) == {"box": 8}
    finally:
        assert await elsewhere.interrupt() == 0
