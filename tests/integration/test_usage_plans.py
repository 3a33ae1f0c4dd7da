"""Usage figures (exact, agreeing with analytics) and plan enforcement: the event quota at ingest,
the rateLimitPerSec cap, the endpoint count and features, with self-hosters unchanged."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from control.policy.proration import add_months
from control.services import rollups
from control.services.rollups import AttemptFact, aggregate
from control.services.usage_report import month_start
from tests.integration.conftest import Caller
from tests.integration.plans_support import plans_app  # noqa: F401 - fixture

DIRECT = {"destination": "https://api.example.com/webhooks", "payload": {"n": 1}}
EP = {"url": "https://hooks.example.com/h", "eventTypes": ["order.created"]}
GOOD = "function handler(webhook) { return webhook; }"


def idem() -> dict[str, str]:
    return {"X-Idempotency-Key": str(uuid.uuid4())}


async def on_plan(pool: asyncpg.Pool, caller: Caller, plan: str) -> None:
    await pool.execute("UPDATE clients SET plan_id = $2 WHERE id = $1", uuid.UUID(caller.client_id), plan)


async def seed_attempts(pool: asyncpg.Pool, client: uuid.UUID, at: list[tuple[datetime, str, str]]) -> None:
    facts = [AttemptFact(client, None, None, ts, outcome, None if outcome == "success" else "5xx", 10, status)
             for ts, outcome, status in at]
    async with pool.acquire() as conn, conn.transaction():
        await rollups.apply(conn, aggregate(facts))


async def test_usage_is_exact_and_agrees_with_analytics(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    client = uuid.UUID(plans_app.client_id)
    for _ in range(3):
        assert (await plans_app.call("POST", "/api/v1/events", DIRECT, idem()))[0] == 201
    this = month_start(datetime.now(UTC))
    last = add_months(this, -1)
    await pool.execute("INSERT INTO client_usage (client_id, month, slot, events) VALUES ($1, $2, 7, 11)",
                       client, last.date())
    await seed_attempts(pool, client, [
        (this + timedelta(seconds=30), "success", "delivered"), (this + timedelta(minutes=3), "failure", "failed"),
        (last + timedelta(days=3), "success", "delivered"), (last + timedelta(days=4), "failure", "dead"),
        (last - timedelta(minutes=1), "success", "delivered")])     # two months ago: not in either

    status, cur, _ = await plans_app.call("GET", "/api/v1/usage/current")
    assert status == 200, cur
    assert (cur["eventsAccepted"], cur["deliveries"], cur["attempts"], cur["failed"]) == (3, 1, 2, 1)
    assert (cur["planId"], cur["quota"], cur["remaining"]) == ("self-hosted", None, None)
    assert cur["periodStart"] == this.strftime("%Y-%m-%dT%H:%M:%SZ")

    status, hist, _ = await plans_app.call("GET", "/api/v1/usage/history?months=2")
    assert status == 200 and [m["month"] for m in hist["data"]] == [last.strftime("%Y-%m"), this.strftime("%Y-%m")]
    assert hist["data"][1] == {k: v for k, v in cur.items() if k not in ("planId", "quota", "remaining")}
    assert (hist["data"][0]["eventsAccepted"], hist["data"][0]["deliveries"], hist["data"][0]["deadLettered"]) == \
        (11, 1, 1)
    status, six, _ = await plans_app.call("GET", "/api/v1/usage/history")
    assert status == 200 and len(six["data"]) == 6 and six["data"][-2:] == hist["data"]

    for month in hist["data"]:
        status, summary, _ = await plans_app.call(
            "GET", f"/api/v1/analytics/summary?from={month['periodStart']}&to={month['periodEnd']}")
        assert status == 200, summary
        assert (summary["delivered"], summary["attempts"], summary["failed"], summary["deadLettered"],
                summary["successes"]) == (month["deliveries"], month["attempts"], month["failed"],
                                          month["deadLettered"], month["successes"])

    for bad in ("0", "25", "x"):
        status, err, _ = await plans_app.call("GET", f"/api/v1/usage/history?months={bad}")
        assert status == 400 and err["error"].startswith("months:"), err


async def test_the_plans_quota_is_enforced_at_ingest(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    await on_plan(pool, plans_app, "free")                                 # 20 events a month
    batch = {"events": [{"idempotencyKey": str(uuid.uuid4()), **DIRECT} for _ in range(15)]}
    assert (await plans_app.call("POST", "/api/v1/events/batch", batch, idem()))[0] in (200, 201, 207)
    too_many = {"events": [{"idempotencyKey": str(uuid.uuid4()), **DIRECT} for _ in range(6)]}
    status, err, _ = await plans_app.call("POST", "/api/v1/events/batch", too_many, idem())
    assert status == 402 and err["code"] == "QUOTA_EXCEEDED", err
    assert await pool.fetchval("SELECT count(*) FROM events") == 15

    # 50 concurrent single ingests at the edge: exactly the 5 left are accepted.
    answers = await asyncio.gather(*(plans_app.call("POST", "/api/v1/events", DIRECT, idem()) for _ in range(50)))
    statuses = sorted(a[0] for a in answers)
    assert statuses.count(201) == 5 and statuses.count(402) == 45, statuses
    assert await pool.fetchval("SELECT count(*) FROM events") == 20
    status, cur, _ = await plans_app.call("GET", "/api/v1/usage/current")
    assert (cur["quota"], cur["eventsAccepted"], cur["remaining"]) == (20, 20, 0)

    # an operator's own monthly_quota overrides the plan's
    await pool.execute("UPDATE clients SET monthly_quota = 21 WHERE id = $1", uuid.UUID(plans_app.client_id))
    assert (await plans_app.call("POST", "/api/v1/events", DIRECT, idem()))[0] == 201
    # a plan the catalogue no longer lists falls back to the default (self-hosted: unlimited)
    await pool.execute("UPDATE clients SET monthly_quota = NULL, plan_id = 'gone' WHERE id = $1",
                       uuid.UUID(plans_app.client_id))
    assert (await plans_app.call("POST", "/api/v1/events", DIRECT, idem()))[0] == 201


async def test_rate_limit_is_clamped_to_the_plans_cap(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    status, ep, _ = await plans_app.call("POST", "/api/v1/endpoints", {**EP, "rateLimitPerSec": 5000})
    assert status == 201 and ep["rateLimitPerSec"] == 5000, "self-hosted: not capped"
    await on_plan(pool, plans_app, "free")                                 # cap 10
    status, ep, _ = await plans_app.call("POST", "/api/v1/endpoints", {**EP, "rateLimitPerSec": 50})
    assert status == 201 and ep["rateLimitPerSec"] == 10, ep
    status, ep, _ = await plans_app.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"rateLimitPerSec": 0})
    assert status == 200 and ep["rateLimitPerSec"] == 10, "0 (unlimited) becomes the cap"
    status, ep, _ = await plans_app.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"rateLimitPerSec": 3})
    assert status == 200 and ep["rateLimitPerSec"] == 3


async def test_endpoint_count_is_refused_with_402(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    await on_plan(pool, plans_app, "free")                                 # 2 endpoints
    made = await asyncio.gather(*(plans_app.call("POST", "/api/v1/endpoints", EP) for _ in range(5)))
    assert sorted(m[0] for m in made) == [201, 201, 402, 402, 402]
    refused = next(m[1] for m in made if m[0] == 402)
    assert refused["code"] == "PLAN_LIMIT_EXCEEDED" and refused["limit"] == 2 and refused["planId"] == "free"
    ep_id = next(m[1]["id"] for m in made if m[0] == 201)
    assert (await plans_app.call("DELETE", f"/api/v1/endpoints/{ep_id}"))[0] == 204
    assert (await plans_app.call("POST", "/api/v1/endpoints", EP))[0] == 201


async def test_features_are_gated_with_a_clear_error(plans_app: Caller, pool: asyncpg.Pool) -> None:  # noqa: F811
    status, ep, _ = await plans_app.call("POST", "/api/v1/endpoints", {**EP, "transformation": GOOD})
    assert status == 201
    await on_plan(pool, plans_app, "free")
    status, err, _ = await plans_app.call("POST", "/api/v1/endpoints", {**EP, "transformation": GOOD})
    assert status == 402 and err["code"] == "FEATURE_NOT_IN_PLAN" and err["feature"] == "transformations", err
    status, _, _ = await plans_app.call("PATCH", f"/api/v1/endpoints/{ep['id']}", {"description": "still editable"})
    assert status == 200, "an endpoint made before the downgrade stays editable"
    for method, path in (("GET", "/api/v1/alerting/rules"), ("GET", "/api/v1/connectors"),
                         ("GET", "/api/v1/inbound-endpoints")):
        status, err, _ = await plans_app.call(method, path)
        assert status == 402 and err["code"] == "FEATURE_NOT_IN_PLAN" and "Free plan" in err["error"], (path, err)
    await on_plan(pool, plans_app, "growth")                              # alerting, not connectors
    assert (await plans_app.call("GET", "/api/v1/alerting/rules"))[0] == 200
    assert (await plans_app.call("GET", "/api/v1/connectors"))[0] == 402


async def test_entitlements_show_the_quota_ingest_enforces(plans_app: Caller, pool: Any) -> None:  # noqa: F811
    await on_plan(pool, plans_app, "growth")
    status, ent, _ = await plans_app.call("GET", "/api/v1/entitlements")
    assert status == 200 and ent["monthlyEventQuota"] == 1000
    status, cur, _ = await plans_app.call("GET", "/api/v1/usage/current")
    assert (cur["planId"], cur["quota"], cur["remaining"]) == ("growth", 1000, 1000)
