"""Live statistics: queue depth, recent rates and shard figures (GET /api/v1/stats and its
WebSocket), rate-limit figures, and the database half of the Prometheus metrics."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from control.errors import NotFound
from control.jsonfmt import iso
from control.metrics import DatabaseFigures
from control.services.engine_status import engine_status
from control.services.principal import Principal
from control.settings import Settings
from control.store.queries import q
from control.validate import uuid_or_404

QUEUE_STATES = ("queued", "delivering", "failed")
MAX_RATE_LIMIT_ENDPOINTS = 1000


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else 0.0


def shard_json(row: asyncpg.Record) -> dict[str, Any]:
    return {"index": row["shard_index"], "range": row["slot"], "epoch": row["epoch"],
            "buffered": row["buffered"], "inFlight": row["in_flight"], "deliveredTotal": row["delivered_total"],
            "updatedAt": iso(row["updated_at"])}


def endpoint_limit_json(row: asyncpg.Record) -> dict[str, Any]:
    live = row["reported_at"] is not None
    return {"endpointId": str(row["id"]), "url": row["url"], "limitPerSec": row["rate_limit_per_sec"],
            "tokens": row["tokens"] if live else None,
            "throttled": row["throttled_total"] if live else None,
            "circuitState": row["breaker_state"] if live else row["circuit_state"],
            "reportedAt": iso(row["reported_at"])}


class StatsService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings) -> None:
        self.pool = pool
        stats = settings.section("stats")
        self.shard_stale_s = float(stats["shard_stale_s"])
        self.member_ttl_s = float(settings.engine["lease_ttl_s"])
        self.default_key_limit = int(settings.api["default_rate_limit"])

    async def snapshot(self, who: Principal) -> dict[str, Any]:
        """Queue depth by state, in flight, delivered/failed per second over the last minute, shards."""
        async with self.pool.acquire() as conn:
            depth = {r["status"]: r["n"] for r in
                     await conn.fetch(q("stats_queue_depth"), who.client_id, who.project_id)}
            recent = await conn.fetchrow(q("stats_recent_rollups"), who.client_id, who.project_id)
            shards = await conn.fetch(q("stats_shards"), self.shard_stale_s)
        seconds = (recent["until"] - recent["since"]).total_seconds()
        queue = {s: int(depth.get(s, 0)) for s in QUEUE_STATES}
        return {
            "timestamp": iso(recent["until"]),
            "queue": queue,
            "queueDepth": sum(queue.values()),
            "inFlight": queue["delivering"],
            "deliveredPerSec": _rate(recent["delivered"], seconds),
            "failedPerSec": _rate(recent["failed"], seconds),
            "lastMinute": {"windowSeconds": round(seconds, 3), "attempts": recent["attempts"],
                           "successes": recent["successes"], "failed": recent["failed"],
                           "delivered": recent["delivered"], "dead": recent["dead"]},
            "shards": [shard_json(r) for r in shards],
        }

    async def _endpoints(self, who: Principal, endpoint_id: uuid.UUID | None) -> list[asyncpg.Record]:
        return list(await self.pool.fetch(q("rate_limit_endpoints"), who.client_id, who.project_id, endpoint_id,
                                          self.shard_stale_s, MAX_RATE_LIMIT_ENDPOINTS))

    async def rate_limits(self, who: Principal) -> dict[str, Any]:
        """Every active API key and endpoint of the tenant: configured limit, tokens, throttled.

        Key figures are global (every API worker's): the key's shared bucket and its reported refusals;
        a key never used has a full bucket and none. A limit of 0 is unlimited (tokens and throttled null).
        """
        keys = await self.pool.fetch(q("rate_limit_keys"), who.client_id, who.project_id, self.default_key_limit)
        out_keys = []
        for k in keys:
            limit, tokens = k["limit_per_sec"], k["tokens"]
            limited = limit > 0
            out_keys.append({
                "keyId": str(k["id"]), "name": k["name"], "keyPrefix": k["key_prefix"], "limitPerSec": limit,
                "tokens": (float(limit) if tokens is None else round(tokens, 3)) if limited else None,
                "throttled": (k["refused"] or 0) if limited else None})
        endpoints = await self._endpoints(who, None)
        return {"apiKeys": out_keys, "endpoints": [endpoint_limit_json(r) for r in endpoints]}

    async def endpoint_rate_limit(self, who: Principal, endpoint_id: str) -> dict[str, Any]:
        rows = await self._endpoints(who, uuid_or_404(endpoint_id, "endpoint"))
        if not rows:
            raise NotFound("endpoint not found")
        return endpoint_limit_json(rows[0])

    async def database_figures(self) -> DatabaseFigures:
        """Everything /metrics reads from Postgres, in one connection."""
        async with self.pool.acquire() as conn:
            queue = {r["status"]: r["n"] for r in await conn.fetch(q("metrics_queue_depth"))}
            breakers = {r["circuit_state"]: r["n"] for r in await conn.fetch(q("metrics_breakers"))}
            leases = [(r["slot"], r["owner"], r["live"]) for r in await conn.fetch(q("metrics_leases"))]
            shards = [(r["slot"], r["buffered"], r["in_flight"])
                      for r in await conn.fetch(q("metrics_shards"), self.shard_stale_s)]
            engine = await engine_status(conn, self.member_ttl_s)
        return DatabaseFigures(queue, breakers, leases, shards, engine)
