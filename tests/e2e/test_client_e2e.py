"""The Python client against a real `mittr serve`: every resource, cursor iteration, errors with
their codes, and the retry guarantees (a lost answer never duplicates an event; 429/503 are waited
out as Retry-After says) through a real proxy that misbehaves on cue."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from mittr_client import AsyncClient, Client, Conflict, Event, NotFound, RetryPolicy, Unavailable
from mittr_client import models as m
from tests.support.flaky_proxy import FlakyProxy
from tests.support.server import MittrServer

pytestmark = pytest.mark.e2e
FAST = RetryPolicy(attempts=4, base=0.05, cap=0.2, max_retry_after=5)


async def test_sync_client_covers_the_resources_and_iterates_every_page(server: MittrServer) -> None:
    def work() -> None:
        with Client(server.url, server.admin_key, retry=FAST) as c:
            ep = c.endpoints.create("https://consumer.example.com/hook", delivery_mode="poll", event_types=["client.*"],
                                    description="sdk")
            assert ep.delivery_mode == "poll" and ep.signing_secret and ep.event_types == ["client.*"]
            assert c.endpoints.pause(ep.id).status == "paused"
            assert c.endpoints.resume(ep.id).status == "active"
            made = [c.events.create({"n": i}, event_type="client.tick") for i in range(5)]
            assert all(isinstance(e, Event) and e.status == "queued" for e in made)
            seen = [e.id for e in c.events.list(limit=2) if e.event_type == "client.tick"]
            assert sorted(seen) == sorted(e.id for e in made)          # three pages, nothing lost or twice
            assert len(seen) == len(set(seen))
            full = c.events.get(made[0].id)
            assert full.payload == {"n": 0} and full.idempotency_key.startswith("mittr-client-")
            et = c.event_types.create("client.tick", description="ticks")
            assert et.name == "client.tick" and et.id in [t.id for t in c.event_types.list(limit=1)]
            key = c.api_keys.create("sdk-key", scopes=["events:read"])
            assert key.key and key.key.startswith("mtr_") and key.scopes == ["events:read"]
            assert key.id in [k.id for k in c.api_keys.list(limit=1)]
            proj = c.projects.create("SDK", environment="staging")
            assert c.projects.get(proj.id).name == "SDK"
            assert ep.id in [e.id for e in c.endpoints.list(limit=1)]
            with pytest.raises(NotFound) as missing:
                c.events.get("00000000-0000-0000-0000-000000000000")
            assert missing.value.code == "NOT_FOUND" and missing.value.status == 404
            explicit = c.events.create({}, event_type="client.tick", idempotency_key="sdk-explicit")
            with pytest.raises(Conflict) as dup:          # the caller's own key, used twice: told so
                explicit = c.events.create({}, event_type="client.tick", idempotency_key="sdk-explicit")
            assert dup.value.status == 409 and dup.value.code
            polled = c.polling.poll(ep.id, limit=10, timeout=5)
            assert polled and {p.id for p in polled} <= {e.id for e in made} | {explicit.id}
            assert c.polling.ack(ep.id, [p.id for p in polled]) == len(polled)
    await asyncio.to_thread(work)


async def test_async_client_iterates_and_reads(server: MittrServer) -> None:
    async with AsyncClient(server.url, server.admin_key, retry=FAST) as c:
        made = [await c.events.create({"i": i}, event_type="async.tick") for i in range(3)]
        got = [e.id async for e in c.events.list(limit=1) if e.event_type == "async.tick"]
        assert sorted(got) == sorted(e.id for e in made)
        assert (await c.events.get(made[1].id)).payload == {"i": 1}
        acked = [d async for d in c.deliveries.list(limit=1)]   # the acks above, one page each
        assert acked and all(d.outcome == "success" and d.id for d in acked)
        assert len({d.id for d in acked}) == len(acked)


async def test_a_lost_answer_is_retried_under_the_same_key_and_never_duplicates(server: MittrServer) -> None:
    proxy = await FlakyProxy(server.url, lambda meth, path, n: "lose-answer"
                             if (meth, path, n) == ("POST", "/api/v1/events", 1) else "pass").start()
    try:
        async with AsyncClient(proxy.url, server.admin_key, retry=FAST) as c:
            event = await c.events.create({"order": "lost"}, event_type="lost.answer")
        assert [s for s in proxy.seen if s[1] == "/api/v1/events"][:2] == [
            ("POST", "/api/v1/events", "lose-answer"), ("POST", "/api/v1/events", "409")]
        assert event.payload == {"order": "lost"} and event.id
        async with AsyncClient(server.url, server.admin_key) as direct:
            stored = [e async for e in direct.events.list() if e.event_type == "lost.answer"]
        assert [e.id for e in stored] == [event.id]                    # one event, not two
    finally:
        await proxy.stop()


async def test_429_and_503_are_waited_out_as_retry_after_says(server: MittrServer) -> None:
    def plan(meth: str, path: str, n: int) -> Any:
        if path == "/api/v1/events" and meth == "POST":
            return {1: (429, {"Retry-After": "1"}), 2: (503, {"Retry-After": "1"})}.get(n, "pass")
        return "pass"
    proxy = await FlakyProxy(server.url, plan).start()
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)
    try:
        async with AsyncClient(proxy.url, server.admin_key, retry=FAST, sleep=sleep) as c:
            event = await c.events.create({"x": 1}, event_type="busy.tick")
        assert event.id and waits == [1.0, 1.0]
        # Out of attempts: the error is raised with the server's code.
        always = await FlakyProxy(server.url, lambda *_: (503, {"Retry-After": "0"})).start()
        try:
            async with AsyncClient(always.url, server.admin_key, retry=FAST, sleep=sleep) as c:
                with pytest.raises(Unavailable) as err:
                    await c.events.get(event.id)
            assert err.value.code == "INJECTED" and len(always.seen) == FAST.attempts
        finally:
            await always.stop()
    finally:
        await proxy.stop()


async def test_the_models_name_only_fields_the_openapi_document_declares(server: MittrServer) -> None:
    async with aiohttp.ClientSession() as s, s.get(server.url + "/openapi.json") as r:
        components = (await r.json())["components"]["schemas"]
    checked = 0
    for model in (m.DeliveryAttempt, m.Event, m.ApiKey, m.Project, m.PolledEvent):
        declared = set(components[model.schema]["properties"])
        if model is m.Event:
            declared |= set(components["Event"]["properties"])
        if model is m.ApiKey:
            declared.add("key")   # the create answer adds the raw key
        assert set(model.fields().values()) <= declared, model.__name__
        checked += 1
    assert checked == 5
