"""Per-API-key request rate limit, global across every API worker and host.

Each key has one token bucket in Postgres (`api_rate_buckets`): its `rate_limit` requests per
second, or `api.default_rate_limit` when the key has none, with a burst of one second's worth; a
limit of 0 is unlimited and never touches the table. A worker leases tokens from the bucket in
chunks and spends them in memory (control/policy/rate_lease.py: chunk size, expiry, the bound on
how far the global count can stray from the limit), so most requests never wait on Postgres.
Concurrent requests for a key in one worker share one in-flight lease fetch.

If Postgres cannot be reached during a fetch, the connection error propagates like any other
handler's, and the app answers 503 UNAVAILABLE with Retry-After (api/app.py): the limiter does not
fail open, because a worker that cannot reach Postgres cannot serve the request anyway.

Refused requests are counted per key in the same row (`refused`, for GET /api/v1/metrics/rate-limits)
without a round trip of their own: a worker adds the refusals it has not reported yet to its next
take of the key's tokens, and a background reporter adds whatever is still unreported after
REPORT_INTERVAL_S (a worker whose clients stopped after a refusal takes nothing again), for all keys
in one statement. So the shared count trails each worker's by at most about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from control.policy.rate_lease import KeyLease
from control.settings import Settings
from control.store.queries import q

log = logging.getLogger("mittr.ratelimit")
MAX_TRACKED_KEYS = 100_000
REPORT_INTERVAL_S = 1.0   # refusals no take carried are added to the shared counts after this long


@dataclass(frozen=True, slots=True)
class RateVerdict:
    allowed: bool
    limit: int            # the key's requests per second
    remaining: int        # requests that could be made right now (the shared bucket as last seen)
    reset: int            # unix seconds when the bucket is full again
    retry_after: int      # seconds to wait before the next request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset)}


class ApiRateLimiter:
    def __init__(self, pool: Any, partitions: int = 0, settings: Settings | None = None, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.pool = pool
        self.default_limit = int(settings.api["default_rate_limit"]) if settings else 0
        self._clock, self._wall = clock, wall
        self._leases: dict[uuid.UUID, KeyLease] = {}
        self._fetching: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._unreported: dict[uuid.UUID, KeyLease] = {}    # leases holding refusals to report
        self._reporter: asyncio.Task[None] | None = None
        self._closing = False
        self._report_lock = asyncio.Lock()

    async def take(self, key: uuid.UUID, limit: int | None) -> RateVerdict | None:
        """Take one request from `key`'s bucket; None when the key is unlimited."""
        per_second = self.default_limit if limit is None else limit
        if per_second <= 0:
            return None
        lease = self._lease(key, per_second)
        lease.note_request(self._clock())
        while True:
            now = self._clock()
            if lease.take(now):
                return self._verdict(lease, True, now)
            if lease.refuses(now):
                lease.refuse()
                self._to_report(key, lease)
                return self._verdict(lease, False, now)
            await self._fetch(key, lease)

    def _lease(self, key: uuid.UUID, limit: int) -> KeyLease:
        lease = self._leases.get(key)
        if lease is None:
            if len(self._leases) >= MAX_TRACKED_KEYS:    # keep the refusals still to report
                self._leases = {k: v for k, v in self._leases.items() if v.unreported}
            lease = self._leases[key] = KeyLease(limit)
        else:
            lease.set_limit(limit, self._clock())
        return lease

    async def _fetch(self, key: uuid.UUID, lease: KeyLease) -> None:
        """Wait for the key's next chunk, joining the fetch already in flight if there is one."""
        task = self._fetching.get(key)
        if task is None or task.done():
            task = self._fetching[key] = asyncio.ensure_future(self._lease_more(key, lease))
            task.add_done_callback(lambda t: self._fetched(key, t))
        # Shielded: a waiter whose client went away must not cancel the fetch the others wait on.
        await asyncio.shield(task)

    def _fetched(self, key: uuid.UUID, task: asyncio.Task[None]) -> None:
        if self._fetching.get(key) is task:
            del self._fetching[key]
        if not task.cancelled():
            task.exception()    # retrieved here too, so an error no waiter saw is not logged as lost

    async def _lease_more(self, key: uuid.UUID, lease: KeyLease) -> None:
        refused = lease.report()
        try:
            row = await self.pool.fetchrow(q("rate_bucket_take"), key, float(lease.limit), lease.chunk(), refused)
        except BaseException:
            if refused:     # not counted: the reporter tries again
                lease.unreported += refused
                self._to_report(key, lease)
            raise
        lease.granted(row["granted"], row["tokens"], self._clock())

    def _to_report(self, key: uuid.UUID, lease: KeyLease) -> None:
        self._unreported[key] = lease
        if self._reporter is None and not self._closing:
            self._reporter = asyncio.get_running_loop().create_task(self._report_soon())

    async def _report_soon(self) -> None:
        try:
            while self._unreported:     # a failed report keeps its refusals: retried a second later
                await asyncio.sleep(REPORT_INTERVAL_S)
                await self.report_refusals()
        finally:
            self._reporter = None

    async def report_refusals(self) -> None:
        """Add every key's unreported refusals to its shared count, in one statement. Also called before
        the counts are read, so that this worker's own are in them; a report in flight is waited for."""
        async with self._report_lock:
            pending, self._unreported = self._unreported, {}
            batch = [(key, lease, n) for key, lease in pending.items() if (n := lease.report())]
            if not batch:
                return
            sent = False
            try:
                await self.pool.execute(q("rate_bucket_add_refusals"), [k for k, _, _ in batch],
                                        [float(lease.limit) for _, lease, _ in batch], [n for _, _, n in batch])
                sent = True
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("rate-limit refusals not reported yet", extra={"keys": len(batch), "error": str(exc)})
            finally:
                if not sent:
                    for key, lease, n in batch:
                        lease.unreported += n
                        self._to_report(key, lease)

    async def aclose(self) -> None:
        """Report the refusals still counted here (the API worker is stopping, the pool still open)."""
        self._closing = True
        reporter = self._reporter
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        await self.report_refusals()
        self._unreported.clear()

    def _verdict(self, lease: KeyLease, allowed: bool, now: float) -> RateVerdict:
        reset = math.ceil(self._wall() + lease.full_in(now))
        return RateVerdict(allowed, lease.limit, lease.remaining(now), reset,
                           0 if allowed else lease.retry_after(now))
