"""X-Project-ID scopes every resource family: data made in project A, project B and in no project,
then read back under each scope. A and B see only their own; no header sees the whole workspace."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest

from control.services.keys import create_key
from tests.integration.conftest import Caller

SCOPES = ("A", "B", None)


@dataclass
class Slice:
    """What one scope (a project, or none) holds."""
    headers: dict[str, str]
    project: str | None = None
    endpoint: str = ""
    event_type: str = ""
    events: list[str] = field(default_factory=list)
    attempt: str = ""


Scene = dict[str | None, Slice]


async def ok(c: Caller, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             expect: int = 200) -> Any:
    status, out, _ = await c.call(method, path, body, headers)
    assert status == expect, (method, path, out)
    return out


@pytest.fixture
async def scene(app_client: Caller) -> Scene:
    """Per scope: a poll endpoint for order.*, an event type, two events (one delivered by ack, one
    still queued), hence one attempt and one rollup row."""
    out: Scene = {}
    for scope in SCOPES:
        s = Slice({})
        if scope is not None:
            s.project = (await ok(app_client, "POST", "/api/v1/projects", {"name": scope}, expect=201))["id"]
            s.headers = {"X-Project-ID": s.project}
        s.endpoint = (await ok(app_client, "POST", "/api/v1/endpoints", {
            "url": "https://consumer.example.com/hook", "eventTypes": ["order.*"], "deliveryMode": "poll"},
            s.headers, 201))["id"]
        s.event_type = (await ok(app_client, "POST", "/api/v1/event-types", {"name": "order.created"},
                                 s.headers, 201))["id"]
        for n in range(2):
            created = await ok(app_client, "POST", "/api/v1/events",
                               {"eventType": "order.created", "payload": {"n": n}},
                               {**s.headers, "X-Idempotency-Key": str(uuid.uuid4())}, 201)
            s.events.append(created["id"])
        taken = await ok(app_client, "GET", f"/api/v1/poll?endpoint_id={s.endpoint}&timeout=0", headers=s.headers)
        assert [e["id"] for e in taken["data"]] == s.events, "an event fans out to its own project's endpoints only"
        acked = await ok(app_client, "POST", "/api/v1/poll/ack", {"endpoint_id": s.endpoint,
                                                                  "event_ids": s.events[:1]}, s.headers)
        assert acked["acknowledged"] == 1
        out[scope] = s
    for s in out.values():
        page = await ok(app_client, "GET", f"/api/v1/deliveries?endpoint_id={s.endpoint}")
        [attempt] = page["data"]
        s.attempt = attempt["id"]
    return out


def union(scene: Scene, pick: Callable[[Slice], Any]) -> frozenset[Any]:
    return frozenset(x for s in scene.values() for x in pick(s))


async def ids(c: Caller, path: str, h: dict[str, str], key: str = "id") -> frozenset[str]:
    return frozenset(str(item[key]) for item in (await ok(c, "GET", path, headers=h))["data"])


async def pollable(c: Caller, h: dict[str, str], scene: Scene) -> frozenset[str]:
    found = set()
    for s in scene.values():
        status, _, _ = await c.call("GET", f"/api/v1/poll?endpoint_id={s.endpoint}&timeout=0", headers=h)
        assert status in (200, 404)
        if status == 200:
            found.add(s.endpoint)
    return frozenset(found)


async def stats(c: Caller, h: dict[str, str]) -> tuple[int, int]:
    body = await ok(c, "GET", "/api/v1/stats", headers=h)
    return body["queue"]["queued"], body["lastMinute"]["delivered"]


async def summary(c: Caller, h: dict[str, str]) -> tuple[int, int]:
    body = await ok(c, "GET", "/api/v1/analytics/summary", headers=h)
    return body["sent"], body["delivered"]


async def rate_limited(c: Caller, h: dict[str, str]) -> frozenset[str]:
    body = await ok(c, "GET", "/api/v1/metrics/rate-limits", headers=h)
    return frozenset(e["endpointId"] for e in body["endpoints"])


Observe = Callable[[Caller, dict[str, str], Scene], Awaitable[Any]]
Expect = Callable[[Scene, list[Slice]], Any]

# family -> (what a caller under some scope observes, what it should observe given the slices it may see)
FAMILIES: dict[str, tuple[Observe, Expect]] = {
    "events": (lambda c, h, _: ids(c, "/api/v1/events", h),
               lambda _, seen: frozenset(e for s in seen for e in s.events)),
    "endpoints": (lambda c, h, _: ids(c, "/api/v1/endpoints", h),
                  lambda _, seen: frozenset(s.endpoint for s in seen)),
    "event types": (lambda c, h, _: ids(c, "/api/v1/event-types", h),
                    lambda _, seen: frozenset(s.event_type for s in seen)),
    "deliveries": (lambda c, h, _: ids(c, "/api/v1/deliveries", h),
                   lambda _, seen: frozenset(s.attempt for s in seen)),
    "stats": (lambda c, h, _: stats(c, h), lambda _, seen: (len(seen), len(seen))),
    "analytics summary": (lambda c, h, _: summary(c, h), lambda _, seen: (len(seen), len(seen))),
    "analytics endpoint health": (lambda c, h, _: ids(c, "/api/v1/analytics/endpoint-health", h, "endpointId"),
                                  lambda _, seen: frozenset(s.endpoint for s in seen)),
    "rate limits": (lambda c, h, _: rate_limited(c, h), lambda _, seen: frozenset(s.endpoint for s in seen)),
    "poll": (pollable, lambda _, seen: frozenset(s.endpoint for s in seen)),
}


@pytest.mark.parametrize("family", list(FAMILIES))
async def test_each_family_shows_a_project_only_its_own_data(app_client: Caller, scene: Scene, family: str) -> None:
    observe, expect = FAMILIES[family]
    for scope in ("A", "B"):
        got = await observe(app_client, scene[scope].headers, scene)
        assert got == expect(scene, [scene[scope]]), (family, scope)
    everything = await observe(app_client, {}, scene)
    assert everything == expect(scene, list(scene.values())), (family, "no header: the whole workspace")


async def test_another_projects_rows_answer_404_by_id(app_client: Caller, scene: Scene) -> None:
    a, b = scene["A"], scene["B"]
    paths = [f"/api/v1/events/{b.events[0]}", f"/api/v1/events/{b.events[0]}/deliveries",
             f"/api/v1/endpoints/{b.endpoint}", f"/api/v1/endpoints/{b.endpoint}/versions",
             f"/api/v1/event-types/{b.event_type}", f"/api/v1/deliveries/{b.attempt}",
             f"/api/v1/metrics/rate-limits/endpoint/{b.endpoint}"]
    for path in paths:
        status, err, _ = await app_client.call("GET", path, headers=a.headers)
        assert status == 404 and err["code"] == "NOT_FOUND", path
        status, _, _ = await app_client.call("GET", path, headers=b.headers)
        assert status == 200, path
        status, _, _ = await app_client.call("GET", path)
        assert status == 200, (path, "no header: the whole workspace")
    writes = [("PATCH", f"/api/v1/endpoints/{b.endpoint}", {"description": "x"}),
              ("POST", f"/api/v1/endpoints/{b.endpoint}/pause", None),
              ("PUT", f"/api/v1/event-types/{b.event_type}", {"description": "x"}),
              ("DELETE", f"/api/v1/event-types/{b.event_type}", None),
              ("DELETE", f"/api/v1/endpoints/{b.endpoint}", None),
              ("POST", "/api/v1/poll/ack", {"endpoint_id": b.endpoint, "event_ids": b.events[1:]})]
    for method, path, body in writes:
        status, _, _ = await app_client.call(method, path, body, a.headers)
        assert status == 404, (method, path)
    by_name = await ok(app_client, "GET", "/api/v1/event-types/by-name/order.created", headers=a.headers)
    assert by_name["id"] == a.event_type
    health = await ok(app_client, "GET", f"/api/v1/analytics/endpoint-health?endpointId={b.endpoint}",
                      headers=a.headers)
    assert health["data"] == []
    assert (await ok(app_client, "GET", f"/api/v1/endpoints/{b.endpoint}"))["status"] == "active", "untouched"


async def test_writes_stamp_the_project(app_client: Caller, scene: Scene, pool: asyncpg.Pool) -> None:
    for scope, s in scene.items():
        want = None if scope is None else uuid.UUID(str(s.project))
        for table, row_id in (("endpoints", s.endpoint), ("event_types", s.event_type), ("events", s.events[0]),
                              ("delivery_attempts", s.attempt)):
            got = await pool.fetchval(f"SELECT project_id FROM {table} WHERE id = $1", uuid.UUID(row_id))
            assert got == want, (table, scope)
        rollup = await pool.fetch("SELECT DISTINCT project_id FROM delivery_rollups WHERE endpoint_id = $1",
                                  uuid.UUID(s.endpoint))
        assert [r["project_id"] for r in rollup] == [want or uuid.UUID(int=0)]


async def test_a_key_bound_to_a_project_acts_only_inside_it(app_client: Caller, scene: Scene,
                                                            pool: asyncpg.Pool) -> None:
    a, b = scene["A"], scene["B"]
    bound = await create_key(pool, uuid.UUID(app_client.client_id), "bound-to-a", project_id=uuid.UUID(str(a.project)))
    for headers in ({}, a.headers):
        status, page, _ = await app_client.call("GET", "/api/v1/events", headers=headers, key=bound.key)
        assert status == 200 and {e["id"] for e in page["data"]} == set(a.events)
        status, page, _ = await app_client.call("GET", "/api/v1/projects", headers=headers, key=bound.key)
        assert status == 200 and [p["id"] for p in page["data"]] == [a.project]
    for path in ("/api/v1/events", "/api/v1/stats", "/api/v1/projects"):
        status, err, _ = await app_client.call("GET", path, headers=b.headers, key=bound.key)
        assert status == 404 and err["code"] == "NOT_FOUND", path
    status, _, _ = await app_client.call("GET", f"/api/v1/endpoints/{b.endpoint}", key=bound.key)
    assert status == 404
    status, ep, _ = await app_client.call("POST", "/api/v1/endpoints", {"url": "https://c.example.com/h",
                                                                        "eventTypes": ["x"]}, key=bound.key)
    assert status == 201 and ep["projectId"] == a.project, "what it creates lands in its project"


async def test_an_idempotency_conflict_names_the_event_only_to_a_caller_who_may_read_it(
        app_client: Caller, scene: Scene) -> None:
    a, b = scene["A"], scene["B"]
    key = str(uuid.uuid4())
    body = {"eventType": "order.created", "payload": {}}
    first = await ok(app_client, "POST", "/api/v1/events", body, {**a.headers, "X-Idempotency-Key": key}, 201)
    status, err, _ = await app_client.call("POST", "/api/v1/events", body, {**b.headers, "X-Idempotency-Key": key})
    assert status == 409 and err["code"] == "CONFLICT" and "eventId" not in err, err
    for headers in (a.headers, {}):
        status, err, _ = await app_client.call("POST", "/api/v1/events", body, {**headers, "X-Idempotency-Key": key})
        assert status == 409 and err["eventId"] == first["id"]


async def test_the_stats_websocket_is_scoped_like_the_snapshot(app_client: Caller, scene: Scene,
                                                               pool: asyncpg.Pool) -> None:
    a, b = scene["A"], scene["B"]

    async def first_push(query: str) -> dict[str, Any]:
        ws = app_client.client.websocket_connect(f"/api/v1/stats/ws?{query}")
        await ws.send({"type": "websocket.connect"})
        assert (await ws.receive())["type"] == "websocket.accept"
        msg = orjson.loads((await ws.receive())["text"])
        await ws.send({"type": "websocket.disconnect", "code": 1000})
        return dict(msg)

    assert (await first_push(f"key={app_client.key}"))["queue"]["queued"] == 3
    assert (await first_push(f"key={app_client.key}&projectId={a.project}"))["queue"]["queued"] == 1
    for bad in (str(uuid.uuid4()), "nope"):
        assert (await first_push(f"key={app_client.key}&projectId={bad}"))["code"] == "NOT_FOUND"
    bound = await create_key(pool, uuid.UUID(app_client.client_id), "bound-to-b", project_id=uuid.UUID(str(b.project)))
    assert (await first_push(f"key={bound.key}"))["queue"]["queued"] == 1
    assert (await first_push(f"key={bound.key}&projectId={a.project}"))["code"] == "NOT_FOUND"
    await app_client.client.websocket_all_closed()
