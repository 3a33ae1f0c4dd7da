"""What a shard tells the rest of the system about itself, once a second.

GET /api/v1/stats shows per-shard figures and GET /api/v1/metrics/rate-limits shows live token
buckets and breakers; both live only in a shard's memory, so each shard upserts them into
`shard_stats` and `endpoint_limiter_stats` (readers ignore rows that stopped being refreshed).
Attempt counts and latencies need nothing from here: the outcome writer records those.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import asyncpg

from control.store.queries import q
from engine.dispatch import Target

log = logging.getLogger("mittr.engine.stats")
REPORT_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class ShardStats:
    index: int
    lo: int
    hi: int
    owner: str
    epoch: int
    buffered: int          # tasks held in memory
    in_flight: int         # requests on the wire
    delivered_total: int   # deliveries this process completed since it started

    @property
    def slot(self) -> str:
        return f"{self.lo}-{self.hi}"


@dataclass(frozen=True, slots=True)
class EndpointLimiterStats:
    endpoint_id: uuid.UUID
    limit_per_sec: int
    tokens: float | None   # None = unlimited
    throttled_total: int
    breaker_state: str     # closed | open | half_open


def limiter_stats(targets: Iterable[Target], now_s: float) -> list[EndpointLimiterStats]:
    """Figures of the endpoints worth showing: rate-limited, throttled at least once, or not closed."""
    out: list[EndpointLimiterStats] = []
    for t in targets:
        if t.endpoint_id is None:
            continue
        state = t.breaker.state.value if t.breaker is not None else "closed"
        if t.bucket is None and t.throttled == 0 and state == "closed":
            continue
        tokens = t.bucket.tokens(now_s) if t.bucket is not None else None
        out.append(EndpointLimiterStats(
            t.endpoint_id, int(t.bucket.rate) if t.bucket is not None else 0,
            None if tokens is None or math.isinf(tokens) else round(tokens, 3), t.throttled, state))
    return out


async def report(pool: asyncpg.Pool, stats: ShardStats, limiters: list[EndpointLimiterStats]) -> None:
    """Upsert this shard's row and its endpoints' limiter rows."""
    await pool.execute(q("upsert_shard_stats"), stats.slot, stats.index, stats.lo, stats.hi, stats.owner,
                       stats.epoch, stats.buffered, stats.in_flight, stats.delivered_total)
    if limiters:
        await pool.execute(q("upsert_endpoint_limiter_stats"), [s.endpoint_id for s in limiters],
                           [s.limit_per_sec for s in limiters], [s.tokens for s in limiters],
                           [s.throttled_total for s in limiters], [s.breaker_state for s in limiters])


Snapshot = Callable[[], tuple[ShardStats, list[EndpointLimiterStats]]]


async def report_loop(pool: asyncpg.Pool, snapshot: Snapshot, stopping: Callable[[], bool],
                      interval_s: float = REPORT_INTERVAL_S) -> None:
    """Report every interval until stopping(); a failed report is logged and tried again next time."""
    while not stopping():
        try:
            stats, limiters = snapshot()
            await report(pool, stats, limiters)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("stats report failed", extra={"error": str(exc)})
        await asyncio.sleep(interval_s)
