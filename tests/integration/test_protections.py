"""Request-level protections: per-key rate limit (through HTTP; the shared bucket itself in
test_rate_limit_global.py), monthly quota, body size, OpenAPI and docs page."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from typing import Any

import pytest

from api.routing import ROUTES
from control.services.keys import create_key
from tests.integration.conftest import Caller
from tests.integration.test_sub_accounts import portal_headers

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
DIRECT = {"destination": "https://api.example.com/webhooks", "payload": {"n": 1}}


def hdr(resp: Any, name: str) -> str | None:
    value = resp.get_first_header(name.encode())
    return value.decode() if value is not None else None


def idem() -> dict[str, str]:
    return {"X-Idempotency-Key": str(uuid.uuid4())}


# -- through HTTP --------------------------------------------------------------------------------------

async def test_rate_limit_headers_and_429_with_retry_after(app_client: Caller, pool: Any) -> None:
    key = (await create_key(pool, uuid.UUID(app_client.client_id), "slow", rate_limit=3)).key
    seen = []
    for _ in range(3):
        status, _, resp = await app_client.call("GET", "/api/v1/events", key=key)
        assert status == 200
        assert hdr(resp, "x-ratelimit-limit") == "3"
        seen.append(int(hdr(resp, "x-ratelimit-remaining") or -1))
        assert int(hdr(resp, "x-ratelimit-reset") or 0) > 1_700_000_000
    assert seen == [2, 1, 0]
    status, err, resp = await app_client.call("GET", "/api/v1/events", key=key)
    assert status == 429 and err["code"] == "RATE_LIMITED", err
    assert int(hdr(resp, "retry-after") or 0) >= 1
    assert hdr(resp, "x-ratelimit-limit") == "3" and hdr(resp, "x-ratelimit-remaining") == "0"
    assert hdr(resp, "x-ratelimit-reset") is not None
    # keys are limited apart: the admin key is unaffected
    status, _, resp = await app_client.call("GET", "/api/v1/events")
    assert status == 200 and hdr(resp, "x-ratelimit-limit") == "1000"


async def test_every_authenticated_route_answers_with_rate_headers(app_client: Caller) -> None:
    """Success or error, every response after authentication carries the three headers."""
    checked = Counter[int]()
    for r in ROUTES.routes:
        if r.scope is None:
            continue
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), r.path)
        status, _, resp = await app_client.call(r.method, path, raw=b"{}" if r.body is not None else None)
        assert status != 401 and status < 500, (r.method, path, status)
        for name in RATE_HEADERS:
            assert hdr(resp, name) is not None, (r.method, path, status, name)
        checked[status] += 1
    assert checked[200] and checked[404] and checked[400]
    status, _, resp = await app_client.call("GET", "/api/v1/events", key="mtr_not-a-key")
    assert status == 401 and hdr(resp, "x-ratelimit-limit") is None   # no key, nothing to count against


async def test_every_body_route_enforces_the_size_limit(app_client: Caller, pool: Any) -> None:
    big = b'{"payload": "' + b"x" * 70_000 + b'"}'
    body_routes = [r for r in ROUTES.routes if r.body is not None]
    assert len(body_routes) >= 5
    portal = await portal_headers(app_client)     # the /sub-account-api routes authenticate by session
    status, scim_token, _ = await app_client.call("POST", "/api/v1/scim/tokens", {"name": "idp"})
    assert status == 201, scim_token
    scim = {"Authorization": f"Bearer {scim_token['token']}"}     # /scim/v2 by the workspace's SCIM token
    for r in body_routes:
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), r.path)
        auth = portal if r.path.startswith("/sub-account-api/") else scim if r.path.startswith("/scim/") else {}
        status, err, _ = await app_client.call(r.method, path, raw=big, headers={**idem(), **auth})
        if r.path.startswith("/scim/"):        # SCIM's own error object
            assert status == 413 and err["status"] == "413", (r.method, r.path, status, err)
        else:
            assert status == 413 and err["code"] == "PAYLOAD_TOO_LARGE", (r.method, r.path, status, err)
    assert await pool.fetchval("SELECT count(*) FROM events") == 0


async def set_quota(pool: Any, client_id: str, quota: int | None) -> None:
    await pool.execute("UPDATE clients SET monthly_quota = $2 WHERE id = $1", uuid.UUID(client_id), quota)


async def used(pool: Any, client_id: str) -> int:
    return int(await pool.fetchval(
        "SELECT coalesce(sum(events), 0) FROM client_usage WHERE client_id = $1", uuid.UUID(client_id)))


async def test_quota_single_creates(app_client: Caller, pool: Any) -> None:
    await set_quota(pool, app_client.client_id, 2)
    first_key = idem()
    assert (await app_client.call("POST", "/api/v1/events", DIRECT, first_key))[0] == 201
    assert (await app_client.call("POST", "/api/v1/events", DIRECT, first_key))[0] == 409   # not counted
    assert (await app_client.call("POST", "/api/v1/events", {"eventType": "x.y", "payload": {}}, idem()))[0] == 201
    status, err, resp = await app_client.call("POST", "/api/v1/events", DIRECT, idem())
    assert status == 402 and err["code"] == "QUOTA_EXCEEDED", err
    assert hdr(resp, "x-ratelimit-limit") is not None
    assert await pool.fetchval("SELECT count(*) FROM events") == 2
    assert await used(pool, app_client.client_id) == 2
    await set_quota(pool, app_client.client_id, 3)          # raised: accepted again
    assert (await app_client.call("POST", "/api/v1/events", DIRECT, idem()))[0] == 201


async def test_quota_batches_are_all_or_nothing(app_client: Caller, pool: Any) -> None:
    await set_quota(pool, app_client.client_id, 5)

    def batch(n: int) -> dict[str, Any]:
        return {"events": [{"idempotencyKey": str(uuid.uuid4()), **DIRECT} for _ in range(n)]}

    assert (await app_client.call("POST", "/api/v1/events/batch", batch(3)))[0] == 201
    status, err, _ = await app_client.call("POST", "/api/v1/events/batch", batch(3))
    assert status == 402 and err["code"] == "QUOTA_EXCEEDED"
    assert await pool.fetchval("SELECT count(*) FROM events") == 3
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 3
    assert (await app_client.call("POST", "/api/v1/events/batch", batch(2)))[0] == 201
    assert (await app_client.call("POST", "/api/v1/events", DIRECT, idem()))[0] == 402
    assert await used(pool, app_client.client_id) == 5


async def test_quota_is_exact_under_concurrency(app_client: Caller, pool: Any) -> None:
    await set_quota(pool, app_client.client_id, 5)
    results = await asyncio.gather(*(app_client.call("POST", "/api/v1/events", DIRECT, idem()) for _ in range(20)))
    assert Counter(s for s, _, _ in results) == {201: 5, 402: 15}
    assert await pool.fetchval("SELECT count(*) FROM events") == 5
    assert await used(pool, app_client.client_id) == 5


async def test_unlimited_clients_are_counted_too(app_client: Caller, pool: Any, second_key: str) -> None:
    results = await asyncio.gather(*(app_client.call("POST", "/api/v1/events", DIRECT, idem()) for _ in range(12)))
    assert all(s == 201 for s, _, _ in results)
    batch = {"events": [{"idempotencyKey": str(uuid.uuid4()), **DIRECT} for _ in range(7)]}
    assert (await app_client.call("POST", "/api/v1/events/batch", batch))[0] == 201
    assert await used(pool, app_client.client_id) == 19
    assert await pool.fetchval("SELECT count(*) FROM client_usage WHERE month <> date_trunc('month', now())::date") == 0


# -- the documents ---------------------------------------------------------------------------------------

async def test_openapi_is_true_to_the_routes(app_client: Caller) -> None:
    status, doc, _ = await app_client.call("GET", "/openapi.json", key="")
    assert status == 200
    declared = {(r.method.lower(), r.path) for r in ROUTES.routes}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert declared == documented
    text = str(doc)
    for ref in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert ref in doc["components"]["schemas"], ref
    batch = doc["paths"]["/api/v1/events/batch"]["post"]
    assert {"201", "400", "402", "409", "413", "429"} <= set(batch["responses"])
    assert batch["requestBody"]["content"]["application/json"]["schema"]["properties"]["events"]["maxItems"] == 100
    assert "X-RateLimit-Limit" in batch["responses"]["201"]["headers"]
    assert "Retry-After" in batch["responses"]["429"]["headers"]
    deliveries = doc["paths"]["/api/v1/deliveries"]["get"]
    assert {p["name"] for p in deliveries["parameters"]} >= {"range", "start", "end", "outcome", "endpoint_id",
                                                             "event_type", "limit", "offset"}


async def test_docs_page_is_self_contained_html(app_client: Caller) -> None:
    resp = await app_client.client.get("/docs")
    assert resp.status == 200
    assert (resp.content_type() or b"").startswith(b"text/html")
    html = (await resp.read()).decode()
    assert "/openapi.json" in html and "<script" in html
    assert "http://" not in html and "https://" not in html and "src=" not in html   # no CDN, works offline


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/deliveries"])
async def test_unknown_project_is_404(app_client: Caller, path: str) -> None:
    status, err, _ = await app_client.call("GET", path, headers={"X-Project-ID": str(uuid.uuid4())})
    assert status == 404 and err["code"] == "NOT_FOUND"


async def test_database_lost_inside_a_handler_answers_503_with_rate_headers(app_client: Caller, db_url: str) -> None:
    """The key was checked already (cached), then the handler's query finds no database: 503
    UNAVAILABLE with Retry-After, never a 500, and nothing stored."""
    from api.context import ctx
    from control.services.events import EventService
    from control.store.db import create_pool

    status, _, _ = await app_client.call("GET", "/api/v1/events")      # authenticates and caches the key
    assert status == 200
    gone = await create_pool(db_url, 1, 1)
    await gone.close()                                                 # any use now raises InterfaceError
    ctx()._services[EventService] = EventService(gone, 4096)
    status, err, resp = await app_client.call("POST", "/api/v1/events",
                                              {"destination": "https://a.example.com/h", "payload": {}},
                                              {"X-Idempotency-Key": str(uuid.uuid4())})
    assert status == 503 and err == {"error": "database unavailable, retry shortly", "code": "UNAVAILABLE"}, err
    assert resp.get_first_header(b"retry-after") == b"1"
    assert resp.get_first_header(b"x-ratelimit-limit") is not None
