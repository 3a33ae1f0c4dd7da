"""Analytics over delivery telemetry, read from the per-minute rollups (never from raw attempts).

Every report takes `endpointId`, `from` and `to` (RFC 3339; default: the last 24 hours) and is
bucketed by hour for ranges up to 7 days and by day beyond, in UTC. Counts are kept per minute, so
`from` and `to` act at minute precision.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from control.errors import BadRequest
from control.jsonfmt import iso
from control.services.principal import Principal
from control.services.rollups import Counts, percentile
from control.settings import Settings
from control.store.queries import q

HOURLY_UP_TO = timedelta(days=7)
MAX_RANGE = timedelta(days=366)
DEFAULT_RANGE = timedelta(hours=24)
MAX_HEALTH_ENDPOINTS = 1000


def parse_time(raw: str, name: str) -> datetime:
    """RFC 3339 date-time with a zone (Z or an offset)."""
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as exc:
        raise BadRequest(f"{name}: expected an RFC 3339 timestamp such as 2026-05-01T00:00:00Z") from exc
    if "T" not in text.upper() or value.tzinfo is None:
        raise BadRequest(f"{name}: expected an RFC 3339 timestamp with a time zone, such as 2026-05-01T00:00:00Z")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    endpoint_id: uuid.UUID | None

    @property
    def granularity(self) -> str:
        return "hour" if self.end - self.start <= HOURLY_UP_TO else "day"

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self.granularity == "hour" else timedelta(days=1)

    def buckets(self) -> list[datetime]:
        """Every bucket start from the one holding `start` up to `end`: charts get explicit zeros."""
        first = self.start.replace(minute=0, second=0, microsecond=0)
        if self.granularity == "day":
            first = first.replace(hour=0)
        out = []
        b = first
        while b < self.end:
            out.append(b)
            b += self.step
        return out

    def seconds_in(self, bucket: datetime) -> float:
        """Seconds of the bucket inside [start, end) (the first and last may be partial)."""
        lo, hi = max(bucket, self.start), min(bucket + self.step, self.end)
        return max(0.0, (hi - lo).total_seconds())

    def head(self) -> dict[str, Any]:
        return {"from": iso(self.start), "to": iso(self.end), "granularity": self.granularity,
                "endpointId": str(self.endpoint_id) if self.endpoint_id else None}


def parse_window(endpoint_raw: str | None, from_raw: str | None, to_raw: str | None,
                 now: datetime | None = None) -> Window:
    endpoint_id = None
    if endpoint_raw:
        try:
            endpoint_id = uuid.UUID(endpoint_raw)
        except ValueError as exc:
            raise BadRequest("endpointId: not an endpoint id") from exc
    end = parse_time(to_raw, "to") if to_raw else (now or datetime.now(UTC))
    start = parse_time(from_raw, "from") if from_raw else end - DEFAULT_RANGE
    if start >= end:
        raise BadRequest("from: must be before to")
    if end - start > MAX_RANGE:
        raise BadRequest(f"to: at most {MAX_RANGE.days} days after from")
    return Window(start, end, endpoint_id)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _latency(hist: list[int], max_ms: int, count: int, sum_ms: int) -> dict[str, Any]:
    return {"count": count, "avgMs": round(sum_ms / count, 1) if count else None,
            "p50": percentile(hist, max_ms, 50), "p95": percentile(hist, max_ms, 95),
            "p99": percentile(hist, max_ms, 99), "maxMs": max_ms if count else None}


def latency_of(c: Counts) -> dict[str, Any]:
    return _latency(c.hist, c.duration_max_ms, c.attempts, c.duration_sum_ms)


class AnalyticsService:
    def __init__(self, pool: asyncpg.Pool, partitions: int, settings: Settings | None = None) -> None:
        self.pool = pool

    async def _series(self, who: Principal, w: Window) -> tuple[list[tuple[datetime, Counts]], Counts]:
        rows = await self.pool.fetch(q("analytics_series"), who.client_id, who.project_id, w.endpoint_id,
                                     w.start.replace(second=0, microsecond=0), w.end, w.granularity)
        found = {r["bucket"]: r for r in rows}
        total = Counts()
        series = []
        for b in w.buckets():
            t = Counts()
            row = found.get(b)
            if row is not None:
                t.add_row(row)
                total.add_row(row)
            series.append((b, t))
        return series, total

    async def _report(self, who: Principal, w: Window,
                      point: Callable[[datetime, Counts], dict[str, Any]]) -> dict[str, Any]:
        series, _ = await self._series(who, w)
        return {**w.head(), "data": [point(b, t) for b, t in series]}

    async def summary(self, who: Principal, w: Window) -> dict[str, Any]:
        _, t = await self._series(who, w)
        return {**w.head(), "sent": t.attempts, "delivered": t.delivered, "failed": t.failed,
                "deadLettered": t.dead, "attempts": t.attempts, "successes": t.successes,
                "timeouts": t.timeouts, "successRate": _ratio(t.successes, t.attempts),
                "avgLatencyMs": latency_of(t)["avgMs"]}

    async def outcomes(self, who: Principal, w: Window) -> dict[str, Any]:
        return await self._report(who, w, lambda b, t: {
            "timestamp": iso(b), "success": t.successes, "failure": t.failures, "timeout": t.timeouts,
            "delivered": t.delivered, "dead": t.dead})

    async def throughput(self, who: Principal, w: Window) -> dict[str, Any]:
        def point(b: datetime, t: Counts) -> dict[str, Any]:
            secs = w.seconds_in(b)
            return {"timestamp": iso(b), "attempts": t.attempts, "delivered": t.delivered,
                    "attemptsPerSec": round(t.attempts / secs, 4) if secs else 0.0,
                    "eventsPerSec": round(t.delivered / secs, 4) if secs else 0.0}
        return await self._report(who, w, point)

    async def latency(self, who: Principal, w: Window) -> dict[str, Any]:
        series, total = await self._series(who, w)
        return {**w.head(), "overall": latency_of(total),
                "data": [{"timestamp": iso(b), **latency_of(t)} for b, t in series]}

    async def failures(self, who: Principal, w: Window) -> dict[str, Any]:
        series, total = await self._series(who, w)
        return {**w.head(), "total": total.failed, "categories": total.errors_by_name(),
                "data": [{"timestamp": iso(b), "total": t.failed, **t.errors_by_name()} for b, t in series]}

    async def endpoint_health(self, who: Principal, w: Window) -> dict[str, Any]:
        rows = await self.pool.fetch(q("analytics_endpoint_health"), who.client_id, who.project_id, w.endpoint_id,
                                     w.start.replace(second=0, microsecond=0), w.end, MAX_HEALTH_ENDPOINTS)
        data = []
        for r in rows:
            hist = list(r["latency_hist"] or [])
            data.append({
                "endpointId": str(r["id"]), "url": r["url"], "status": r["status"],
                "circuitState": r["circuit_state"], "attempts": r["attempts"], "successes": r["successes"],
                "failed": r["failed"], "delivered": r["delivered"], "dead": r["dead"],
                "deliveryRate": _ratio(r["successes"], r["attempts"]),
                "p95LatencyMs": percentile(hist, r["duration_max_ms"], 95)})
        return {**w.head(), "data": data}
