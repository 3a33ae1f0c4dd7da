"""A shard's slow chores: attempt partitions ahead of time, and retention for the whole cluster."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import asyncpg

from control.services.retention import RetentionPolicy, prune_on_schedule
from control.settings import Settings, SettingsError
from control.store.queries import q
from engine.lease import DB_ERRORS

log = logging.getLogger("mittr.engine.housekeeping")
PARTITION_DAYS_AHEAD = 9


async def housekeeping(pool: asyncpg.Pool, settings: Settings, stopping: Callable[[], bool]) -> None:
    """Hourly partition upkeep, and retention every `retention.interval_s` (jittered so that the
    shards do not all try at once; the first to get the lock prunes for the cluster)."""
    try:
        policy: RetentionPolicy | None = RetentionPolicy.from_settings(settings)
    except SettingsError as exc:
        log.error("retention disabled: bad setting", extra={"error": str(exc)})
        policy = None
    every = policy.interval_s if policy else 0
    next_upkeep, next_prune = 0.0, time.monotonic() + random.uniform(5, 60)
    while not stopping():
        if time.monotonic() >= next_upkeep:
            try:
                await pool.execute(q("ensure_attempt_partitions"), PARTITION_DAYS_AHEAD)
            except DB_ERRORS as exc:
                log.warning("partition upkeep failed", extra={"error": str(exc)})
            next_upkeep = time.monotonic() + 3600
        if policy and every and time.monotonic() >= next_prune:
            await prune_on_schedule(settings.database_url, policy)
            next_prune = time.monotonic() + every * random.uniform(1.0, 1.1)
        wake = min(next_upkeep, next_prune) if every else next_upkeep
        await asyncio.sleep(max(1.0, wake - time.monotonic()))
