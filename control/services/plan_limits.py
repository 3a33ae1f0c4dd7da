"""A workspace's plan, looked up where a limit applies: endpoint creation and changes (count,
rateLimitPerSec cap, features), and route families that are a feature. The rules themselves are in
control/policy/plan_limits.py; the monthly event quota is the database's (migration 022), fed from
the catalogue by `sync_catalogue` when the API starts.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from control.policy.plan_limits import (
    check_endpoint_count,
    check_endpoint_features,
    clamp_rate,
    everyone_has,
    feature_refusal,
    gated_feature,
)
from control.policy.plans import Catalogue, Plan
from control.services.account import catalogue
from control.settings import Settings
from control.store.queries import q

SYNC_LOCK = 0x6D69_7474_7250   # advisory lock: two API processes starting together write the mirror in turn


async def sync_catalogue(pool: asyncpg.Pool, plans: Catalogue) -> None:
    """Replace the database's copy of the plans' event quotas (what ingest enforces) with the
    catalogue's, in one transaction: ingest sees the old set or the new, never a mix."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SYNC_LOCK)
        await conn.execute(q("plan_quotas_clear"))
        await conn.execute(q("plan_quotas_insert"), [p.id for p in plans.plans],
                           [p.monthly_event_quota for p in plans.plans], plans.default.id)


class PlanLimits:
    def __init__(self, pool: asyncpg.Pool, partitions: int = 0, settings: Settings | None = None) -> None:
        self.pool = pool
        self.catalogue = catalogue(settings) if settings is not None else None

    async def plan_of(self, conn: asyncpg.Connection | asyncpg.Pool, client_id: uuid.UUID) -> Plan | None:
        if self.catalogue is None:
            return None
        row = await conn.fetchrow(q("client_plan"), client_id)
        return self.catalogue.plan_for(row["plan_id"] if row else None)

    async def require_feature(self, client_id: uuid.UUID, feature: str) -> None:
        """402 FEATURE_NOT_IN_PLAN unless the workspace's plan has `feature` (no query at all when
        every plan has it)."""
        if self.catalogue is None or everyone_has(self.catalogue, feature):
            return
        plan = await self.plan_of(self.pool, client_id)
        if plan is not None and feature not in plan.features:
            raise feature_refusal(plan, feature)

    async def gate(self, client_id: uuid.UUID, permission: str, method: str) -> None:
        """A route family that is a feature (control/policy/plan_limits.py FEATURE_OF_FAMILY)."""
        feature = gated_feature(permission.partition(":")[0], method)
        if feature is not None:
            await self.require_feature(client_id, feature)

    async def admit_endpoint(self, conn: asyncpg.Connection, client_id: uuid.UUID, values: dict[str, Any],
                             given: set[str], creating: bool) -> dict[str, Any]:
        """Inside the endpoint's transaction: refuse what the plan does not allow, and return the
        values with rateLimitPerSec clamped to the plan's cap. A limited endpoint count is checked
        under the workspace row's lock, so concurrent creations cannot pass it together."""
        plan = await self.plan_of(conn, client_id)
        if plan is None:
            return values
        check_endpoint_features(plan, values, given)
        if creating and plan.endpoints is not None:
            await conn.fetchval(q("lock_client_plan"), client_id)
            check_endpoint_count(plan, int(await conn.fetchval(q("account_endpoint_count"), client_id)))
        return {**values, "rate_limit_per_sec": clamp_rate(values["rate_limit_per_sec"], plan.max_rate_limit_per_sec)}
