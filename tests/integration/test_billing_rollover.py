"""The period rollover job against a real database: runners racing each other write one invoice per
period, the advisory lock lets one runner work at a time, and the API workers run it on their own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from control.services.billing import BillingService
from control.services.keys import create_client
from control.services.principal import Principal
from control.settings import load_settings
from tests.integration.plans_support import PLANS
from tests.integration.test_billing import subscribe as subscribe_one

START = datetime(2026, 1, 10, tzinfo=UTC)


def service(pool: asyncpg.Pool, tmp_path: Path) -> BillingService:
    path = tmp_path / "plans.toml"
    path.write_text(PLANS)
    return BillingService(pool, 1, load_settings(env={"MITTR_ACCOUNT__PLANS_FILE": str(path)}))


async def subscribe(pool: asyncpg.Pool, billing: BillingService, n: int) -> list[uuid.UUID]:
    ids = [(await create_client(pool, f"roll-{i}"))["id"] for i in range(n)]
    for client in ids:
        await subscribe_one(billing, Principal(client, None, frozenset(), None), {"planId": "growth"}, START)
    return ids


async def test_runners_racing_write_one_invoice_per_period(pool: asyncpg.Pool, tmp_path: Path) -> None:
    one, two = service(pool, tmp_path), service(pool, tmp_path)
    clients = await subscribe(pool, one, 3)
    await one.checkout(Principal(clients[0], None, frozenset(), None), {"planId": "free"}, "http://x", now=START)
    at = START + timedelta(days=95)          # three periods ended (Feb 10, Mar 10, Apr 10)
    # two lock-taking runners and two sweeps without the lock, all at once
    results = await asyncio.gather(one.tick(at), two.tick(at), one.rollover_due(at), two.rollover_due(at))
    assert sum(r or 0 for r in results) >= 3
    rows = await pool.fetch("SELECT client_id, period_start, plan_id, total_cents FROM invoices"
                            " WHERE reason = 'renewal' ORDER BY client_id, period_start")
    assert len(rows) == 9, rows
    assert {(r["client_id"], r["period_start"]) for r in rows} == {
        (c, START.replace(month=m)) for c in clients for m in (2, 3, 4)}
    # the scheduled change applied at the first renewal: the workspace is on free, its quota with it
    assert {r["plan_id"] for r in rows if r["client_id"] == clients[0]} == {"free"}
    assert await pool.fetchval("SELECT plan_id FROM clients WHERE id = $1", clients[0]) == "free"
    assert await pool.fetchval("SELECT count(*) FROM subscriptions WHERE current_period_end > $1", at) == 3
    # and again: nothing left to do
    assert await asyncio.gather(one.tick(at), two.tick(at)) in ([0, 0], [0, None], [None, 0])
    assert await pool.fetchval("SELECT count(*) FROM invoices WHERE reason = 'renewal'") == 9


async def test_one_runner_at_a_time(pool: asyncpg.Pool, tmp_path: Path) -> None:
    billing = service(pool, tmp_path)
    await subscribe(pool, billing, 1)
    at = START + timedelta(days=40)
    async with pool.acquire() as holder:     # another host's runner holds the lock
        assert await holder.fetchval("SELECT pg_try_advisory_lock(hashtext('mittr_billing_rollover'))")
        assert await billing.tick(at) is None
        assert await pool.fetchval("SELECT count(*) FROM invoices WHERE reason = 'renewal'") == 0
        await holder.fetchval("SELECT pg_advisory_unlock(hashtext('mittr_billing_rollover'))")
    assert await billing.tick(at) == 1
    assert await pool.fetchval("SELECT count(*) FROM invoices WHERE reason = 'renewal'") == 1


async def test_the_api_workers_run_it(db_url: str, pool: asyncpg.Pool, tmp_path: Path) -> None:
    from api.app import create_app

    path = tmp_path / "plans.toml"
    path.write_text(PLANS)
    settings = load_settings(env={"DATABASE_URL": db_url, "MITTR_ACCOUNT__PLANS_FILE": str(path),
                                  "MITTR_BILLING__ROLLOVER_INTERVAL_S": "0.2"})
    billing = BillingService(pool, 1, settings)
    [client] = await subscribe(pool, billing, 1)
    await pool.execute("UPDATE subscriptions SET current_period_start = now() - interval '31 days',"
                       " current_period_end = now() - interval '1 second' WHERE client_id = $1", client)
    app = create_app(settings)
    await app.start()
    try:
        for _ in range(300):                 # nobody asks: the background job renews it (30 s bound)
            if await pool.fetchval("SELECT count(*) FROM invoices WHERE reason = 'renewal'"):
                break
            await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT count(*) FROM invoices WHERE reason = 'renewal'") == 1
        assert await pool.fetchval("SELECT current_period_end > now() FROM subscriptions") is True
    finally:
        await app.stop()
