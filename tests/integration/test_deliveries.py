"""GET /api/v1/deliveries and /api/v1/deliveries/{id}: filters, paging, tenancy, partition pruning."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control.store.queries import q
from tests.integration.conftest import Caller

NOW = datetime.now(UTC)


async def attempt(pool: Any, client_id: str, *, ago: timedelta, outcome: str = "success",
                  endpoint_id: uuid.UUID | None = None, event_type: str | None = None,
                  project_id: uuid.UUID | None = None, status_code: int | None = 200) -> str:
    """An attempt row as the engine's writer records it."""
    aid = uuid.uuid4()
    await pool.execute(
        "INSERT INTO delivery_attempts (id, task_id, event_id, client_id, project_id, endpoint_id, event_type,"
        " attempt_number, status_code, response_body, error, error_category, outcome, duration_ms,"
        " processing_overhead_us, attempted_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $11, $12, 42, 1500, $13)",
        aid, uuid.uuid4(), uuid.uuid4(), uuid.UUID(client_id), project_id, endpoint_id, event_type, status_code,
        "OK" if outcome == "success" else "Service Unavailable", "" if outcome == "success" else "HTTP 503",
        None if outcome == "success" else ("timeout" if outcome == "timeout" else "5xx"), outcome,
        datetime.now(UTC) - ago)
    return str(aid)


def ids(page: dict[str, Any]) -> list[str]:
    return [d["id"] for d in page["data"]]


async def test_default_range_is_24h_newest_first_with_the_attempt_shape(app_client: Caller, pool: Any) -> None:
    cid = app_client.client_id
    recent = await attempt(pool, cid, ago=timedelta(minutes=5))
    older = await attempt(pool, cid, ago=timedelta(hours=3), outcome="failure", status_code=503)
    stale = await attempt(pool, cid, ago=timedelta(days=2))
    status, page, _ = await app_client.call("GET", "/api/v1/deliveries")
    assert status == 200, page
    assert ids(page) == [recent, older] and page["pagination"] == {"hasMore": False, "cursor": None}
    d = page["data"][1]
    assert set(d) == {"id", "eventId", "endpointId", "attemptNumber", "statusCode", "responseBody", "error",
                      "errorCategory", "outcome", "durationMs", "processingOverheadUs", "attemptedAt"}
    assert (d["statusCode"], d["responseBody"], d["error"], d["outcome"]) == (503, "Service Unavailable",
                                                                              "HTTP 503", "failure")
    assert d["durationMs"] == 42 and d["processingOverheadUs"] == 1500 and d["attemptedAt"].endswith("Z")
    for rng, expected in (("1h", [recent]), ("24h", [recent, older]), ("7d", [recent, older, stale]),
                          ("30d", [recent, older, stale])):
        status, page, _ = await app_client.call("GET", f"/api/v1/deliveries?range={rng}")
        assert status == 200 and ids(page) == expected, rng


async def test_custom_range_and_filters(app_client: Caller, pool: Any) -> None:
    cid = app_client.client_id
    ep1, ep2 = uuid.uuid4(), uuid.uuid4()
    a = await attempt(pool, cid, ago=timedelta(days=3), endpoint_id=ep1, event_type="order.created")
    b = await attempt(pool, cid, ago=timedelta(days=3, hours=1), outcome="failure", endpoint_id=ep1,
                      event_type="order.created", status_code=503)
    c = await attempt(pool, cid, ago=timedelta(days=3, hours=2), outcome="timeout", endpoint_id=ep2,
                      event_type="payment.done", status_code=None)
    await attempt(pool, cid, ago=timedelta(days=10))
    start = (NOW - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (NOW - timedelta(days=2)).isoformat()
    base = f"/api/v1/deliveries?start={start}&end={end.replace('+', '%2B')}"
    cases = {"": [a, b, c], "&outcome=failure": [b], "&outcome=timeout": [c], "&outcome=success": [a],
             f"&endpoint_id={ep1}": [a, b], f"&endpoint_id={ep2}&outcome=timeout": [c],
             "&event_type=order.created": [a, b], "&event_type=payment.done": [c], "&event_type=nope": [],
             f"&endpoint_id={uuid.uuid4()}": []}
    for extra, expected in cases.items():
        status, page, _ = await app_client.call("GET", base + extra)
        assert status == 200 and ids(page) == expected, extra
    # start alone runs to now; end alone reaches back one range
    status, page, _ = await app_client.call("GET", f"/api/v1/deliveries?start={start}")
    assert ids(page) == [a, b, c]
    status, page, _ = await app_client.call("GET", f"/api/v1/deliveries?end={end.replace('+', '%2B')}&range=7d")
    assert ids(page) == [a, b, c]


async def test_limit_offset_and_cursor_paging(app_client: Caller, pool: Any) -> None:
    made = [await attempt(pool, app_client.client_id, ago=timedelta(minutes=i)) for i in range(1, 8)]
    status, page, _ = await app_client.call("GET", "/api/v1/deliveries?limit=3")
    assert ids(page) == made[:3] and page["pagination"]["hasMore"] and page["pagination"]["cursor"]
    status, page2, _ = await app_client.call("GET", "/api/v1/deliveries?limit=3&offset=3")
    assert ids(page2) == made[3:6] and page2["pagination"]["hasMore"]
    status, page3, _ = await app_client.call("GET", "/api/v1/deliveries?limit=3&offset=6")
    assert ids(page3) == made[6:] and page3["pagination"] == {"hasMore": False, "cursor": None}
    seen, cursor = [], None
    while True:
        _, p, _ = await app_client.call("GET", "/api/v1/deliveries?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += ids(p)
        if not p["pagination"]["hasMore"]:
            break
        cursor = p["pagination"]["cursor"]
    assert seen == made
    status, page, _ = await app_client.call("GET", "/api/v1/deliveries?limit=200")
    assert status == 200 and len(page["data"]) == 7


@pytest.mark.parametrize(("query", "starts"), [
    ("range=2h", "range"), ("start=yesterday", "start"), ("end=2026-04-13", "end"),
    ("start=2026-04-01T00:00:00", "start"), ("start=2026-04-13T00:00:00Z&end=2026-04-01T00:00:00Z", "start"),
    ("outcome=lost", "outcome"), ("endpoint_id=ep_uuid", "endpoint_id"), ("limit=201", "limit"),
    ("limit=0", "limit"), ("offset=-1", "offset"), ("offset=x", "offset"), ("cursor=%%%", "cursor"),
    ("event_type=" + "x" * 257, "event_type"), ("end=0001-01-01T00:00:00Z", "end"),
])
async def test_bad_query_values_answer_400(app_client: Caller, query: str, starts: str) -> None:
    status, err, _ = await app_client.call("GET", f"/api/v1/deliveries?{query}")
    assert status == 400 and err["code"] == "BAD_REQUEST" and err["error"].startswith(starts), err


async def test_get_one_and_tenant_isolation(app_client: Caller, pool: Any, second_key: str) -> None:
    mine = await attempt(pool, app_client.client_id, ago=timedelta(minutes=1), outcome="failure", status_code=500)
    status, one, _ = await app_client.call("GET", f"/api/v1/deliveries/{mine}")
    assert status == 200 and one["id"] == mine and one["statusCode"] == 500
    status, err, _ = await app_client.call("GET", f"/api/v1/deliveries/{mine}", key=second_key)
    assert status == 404 and err["code"] == "NOT_FOUND"
    status, page, _ = await app_client.call("GET", "/api/v1/deliveries", key=second_key)
    assert status == 200 and page["data"] == []
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        status, err, _ = await app_client.call("GET", f"/api/v1/deliveries/{bad}")
        assert status == 404 and err["code"] == "NOT_FOUND"


async def test_project_scope(app_client: Caller, pool: Any) -> None:
    p1, p2 = uuid.uuid4(), uuid.uuid4()
    for p in (p1, p2):
        await pool.execute("INSERT INTO projects (id, client_id, name) VALUES ($1, $2, 'p')", p,
                           uuid.UUID(app_client.client_id))
    in_p1 = await attempt(pool, app_client.client_id, ago=timedelta(minutes=1), project_id=p1)
    unscoped = await attempt(pool, app_client.client_id, ago=timedelta(minutes=2))
    status, page, _ = await app_client.call("GET", "/api/v1/deliveries", headers={"X-Project-ID": str(p1)})
    assert ids(page) == [in_p1]
    status, page, _ = await app_client.call("GET", "/api/v1/deliveries")
    assert ids(page) == [in_p1, unscoped]
    status, _, _ = await app_client.call("GET", f"/api/v1/deliveries/{in_p1}", headers={"X-Project-ID": str(p2)})
    assert status == 404


async def test_list_reads_only_the_partitions_in_range(pool: Any) -> None:
    """The time bound prunes attempt partitions: a 1-hour window reads today's (and at most
    yesterday's) day partition, never the whole table."""
    async with pool.acquire() as conn:
        total = await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'delivery_attempts'::regclass")
        assert total >= 9
        end = datetime.now(UTC)
        args = (uuid.uuid4(), None, end - timedelta(hours=1), end, None, None, None, None, None, 51, 0)
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + q("list_deliveries"), *args))
    scanned = set(re.findall(r"\bdelivery_attempts_(?:\d{8}|default)\b(?!_)", plan))
    assert 1 <= len(scanned) <= 2 and "delivery_attempts_default" not in scanned, plan
