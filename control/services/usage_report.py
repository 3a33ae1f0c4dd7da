"""Usage by calendar month (UTC): events accepted from the ingest counters (the very rows the quota
is enforced on), deliveries and attempts from the per-minute rollups (the rows analytics read), so
`/usage/*` and `/analytics/summary` over the same range give the same numbers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from control.errors import BadRequest
from control.jsonfmt import iso
from control.policy.plans import effective_quota
from control.policy.proration import add_months
from control.services.account import catalogue
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q

MAX_MONTHS = 24
DEFAULT_MONTHS = 6


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def parse_months(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_MONTHS
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"months: expected an integer from 1 to {MAX_MONTHS}") from exc
    if not 1 <= value <= MAX_MONTHS:
        raise BadRequest(f"months: expected an integer from 1 to {MAX_MONTHS}")
    return value


class UsageService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings) -> None:
        self.pool = pool
        self.catalogue = catalogue(settings)

    async def _months(self, client_id: uuid.UUID, first: datetime, count: int) -> list[dict[str, Any]]:
        """`count` months from `first` (a month start), each with its totals; zeros where nothing happened."""
        end = add_months(first, count)
        async with self.pool.acquire() as conn:
            events = {r["month"]: r["events"] for r in
                      await conn.fetch(q("usage_events_by_month"), client_id, first.date(), end.date())}
            rolled = {r["month"]: r for r in await conn.fetch(q("usage_deliveries_by_month"), client_id, first, end)}
        out = []
        for i in range(count):
            start = add_months(first, i)
            r = rolled.get(start)
            out.append({"month": start.strftime("%Y-%m"), "periodStart": iso(start),
                        "periodEnd": iso(add_months(start, 1)),
                        "eventsAccepted": int(events.get(date(start.year, start.month, 1), 0)),
                        "deliveries": int(r["delivered"]) if r else 0, "attempts": int(r["attempts"]) if r else 0,
                        "successes": int(r["successes"]) if r else 0, "failed": int(r["failed"]) if r else 0,
                        "deadLettered": int(r["dead"]) if r else 0})
        return out

    async def current(self, who: Principal, now: datetime | None = None) -> dict[str, Any]:
        """This calendar month: what was accepted against the quota in force, and what was delivered."""
        start = month_start(now or datetime.now(UTC))
        [month] = await self._months(who.client_id, start, 1)
        row = await self.pool.fetchrow(q("client_plan"), who.client_id)
        plan = self.catalogue.plan_for(row["plan_id"] if row else None)
        quota = effective_quota(plan, row["monthly_quota"] if row else None)
        remaining = None if quota is None else max(quota - month["eventsAccepted"], 0)
        return {**month, "planId": plan.id, "quota": quota, "remaining": remaining}

    async def history(self, who: Principal, months: int, now: datetime | None = None) -> dict[str, Any]:
        """The last `months` calendar months, this one included, oldest first."""
        first = add_months(month_start(now or datetime.now(UTC)), 1 - months)
        return {"months": months, "data": await self._months(who.client_id, first, months)}
